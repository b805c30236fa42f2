"""Knowledge documents (SPEC section 9): uploads in every format, processed in the
background to ``ready`` or ``failed``, the upload errors, long texts, deletion, and
retrieval that finds facts no model could know — on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from sqlalchemy import text

from tests.documents import docx_bytes, html_bytes, markdown_bytes, pdf_bytes, text_bytes
from tests.support import Api, assert_error, scripted_live_key
from tests.waiting import wait_for

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
FORMATS = {
    "pdf": ("handbook.pdf", "application/pdf", pdf_bytes),
    "docx": ("handbook.docx", DOCX, docx_bytes),
    "html": ("handbook.html", "text/html", html_bytes),
    "md": ("handbook.md", "text/markdown", markdown_bytes),
    "txt": ("handbook.txt", "text/plain", text_bytes),
}
# One fact per format, each about an invented thing, so only retrieval can answer.
FACTS = {
    "pdf": ("The Quillomat 7 kiln fires at exactly 1,287 degrees in Brannock.", "kiln",
            "At what temperature does the Quillomat 7 kiln fire?"),
    "docx": ("Marrant's ferry leaves Tarrow Bay for Elsinby at 06:35 each Sunday.", "ferry",
             "When does Marrant's ferry leave for Elsinby?"),
    "html": ("The Dunfel 3 lantern glows plum and runs for 77 hours on one cell.", "lantern",
             "How long does the Dunfel 3 lantern run?"),
    "md": ("Orsic Paley's bakery sells the Velmora loaf for 9 crowns on Tuesdays.", "loaf",
           "How much is the Velmora loaf at Paley's bakery?"),
    "txt": ("The Mirefield observatory's mirror is 4.31 metres across and made of quartz.",
            "mirror", "How wide is the mirror at the Mirefield observatory?"),
}  # fmt: skip
FILLER = (
    "Visitors are welcome on weekdays; please sign in at the front desk and keep to the "
    "marked paths, which are lit after dark."
)


def sections(fact: str) -> list[tuple[str, list[str]]]:
    return [("Welcome", [FILLER, FILLER]), ("Key facts", [fact]), ("Visiting", [FILLER])]


async def setup(api: Api, text_reply: str = "Here is what I know.") -> tuple[str, Any, str]:
    key, llm = await scripted_live_key(api, text_reply)
    avatar = await api.client.post(
        "/v1/avatars",
        json={"name": "Archivist", "ai_provider": llm.name, "tts_provider": "browser"},
        headers=api.auth(key),
    )
    assert avatar.status_code == 200, avatar.text
    return key, llm, avatar.json()["id"]


async def upload(
    api: Api, key: str, avatar_id: str, name: str, ctype: str, data: bytes, **fields: str
) -> httpx.Response:
    return await api.client.post(
        f"/v1/avatars/{avatar_id}/knowledge",
        data={"type": "document", **fields},
        files={"file": (name, data, ctype)},
        headers=api.auth(key),
    )


async def settled(api: Api, key: str, avatar_id: str, knowledge_id: str) -> dict[str, Any]:
    """The item once its processing has ended (ready or failed)."""

    async def done() -> dict[str, Any] | None:
        response = await api.client.get(
            f"/v1/avatars/{avatar_id}/knowledge/{knowledge_id}", headers=api.auth(key)
        )
        assert response.status_code == 200, response.text
        item: dict[str, Any] = response.json()
        return item if item["status"] != "processing" else None

    return await wait_for(done, 60, f"knowledge {knowledge_id} to finish processing", interval=0.2)


async def ask(api: Api, key: str, avatar_id: str, question: str) -> dict[str, Any]:
    conversation = (
        await api.client.post(
            "/v1/conversations", json={"avatar_id": avatar_id}, headers=api.auth(key)
        )
    ).json()
    reply = await api.client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": question, "tts": False},
        headers=api.auth(key),
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def test_every_format_is_extracted_indexed_and_found(api: Api) -> None:
    key, llm, avatar_id = await setup(api)
    items = {}
    for kind, (name, ctype, build) in FORMATS.items():
        response = await upload(api, key, avatar_id, name, ctype, build(sections(FACTS[kind][0])))
        assert response.status_code == 200, response.text
        item = response.json()
        assert item["object"] == "knowledge" and item["type"] == "document"
        assert item["status"] == "processing" and item["title"] == name
        items[kind] = item["id"]
    for kind, knowledge_id in items.items():
        item = await settled(api, key, avatar_id, knowledge_id)
        assert item["status"] == "ready" and item["error"] is None, item
        assert item["chunks"] >= 1
        fact = FACTS[kind][0]
        # The extracted text holds the fact and the filler, not markup or scripts.
        assert item["characters"] >= len(fact) + 3 * len(FILLER), (kind, item)
        assert item["characters"] < len(fact) + 3 * len(FILLER) + 200, (kind, item)
    for kind, (fact, word, question) in FACTS.items():
        reply = await ask(api, key, avatar_id, question)
        assert reply["sources"], (kind, reply)
        top = reply["sources"][0]
        assert top["knowledge_id"] == items[kind], (kind, reply["sources"])
        assert word in top["excerpt"]
        assert fact in llm.requests[-1].messages[0].content


async def test_broken_and_oversized_documents_fail_with_a_readable_error(api: Api) -> None:
    key, _, avatar_id = await setup(api)
    broken = await upload(
        api, key, avatar_id, "broken.pdf", "application/pdf", b"%PDF-1.4\n" + b"\x00garbage" * 50
    )
    assert broken.status_code == 200, broken.text
    item = await settled(api, key, avatar_id, broken.json()["id"])
    assert item["status"] == "failed" and item["chunks"] == 0
    assert item["error"].startswith("The PDF could not be read"), item["error"]
    long_pdf = pdf_bytes([(f"Page {n}", ["Filler text. " * 250]) for n in range(80)])
    too_long = await upload(api, key, avatar_id, "long.pdf", "application/pdf", long_pdf)
    item = await settled(api, key, avatar_id, too_long.json()["id"])
    assert item["status"] == "failed" and "at most 50" in item["error"], item["error"]
    not_utf8 = await upload(
        api, key, avatar_id, "notes.txt", "text/plain", "caf\xe9".encode("cp1252")
    )
    item = await settled(api, key, avatar_id, not_utf8.json()["id"])
    assert item["status"] == "failed" and "UTF-8" in item["error"]
    scanned = await upload(api, key, avatar_id, "scan.pdf", "application/pdf", pdf_bytes([]))
    item = await settled(api, key, avatar_id, scanned.json()["id"])
    assert item["status"] == "failed" and "No text was found" in item["error"]


async def test_upload_errors(api: Api) -> None:
    key, _, avatar_id = await setup(api)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    for name, ctype, data in [
        ("photo.png", "image/png", png),
        ("fake.pdf", "application/pdf", b"just text pretending"),
        ("sheet.xlsx", "application/octet-stream", b"PK\x03\x04" + b"\x00" * 40),
        ("blob.bin", "application/octet-stream", b"\x00\x01\x02binary"),
    ]:
        response = await upload(api, key, avatar_id, name, ctype, data)
        assert_error(response, 400, "invalid_parameter", field="file", reason="unsupported_format")
    empty = await upload(api, key, avatar_id, "empty.txt", "text/plain", b"")
    assert_error(empty, 400, "invalid_parameter", field="file", reason="empty")
    huge = await upload(api, key, avatar_id, "big.txt", "text/plain", b"a" * (10 * 1024 * 1024 + 1))
    assert_error(huge, 413, "request_too_large")
    missing = await api.client.post(
        f"/v1/avatars/{avatar_id}/knowledge", data={"type": "document"},
        files={"other": ("a.txt", b"x", "text/plain")}, headers=api.auth(key),
    )  # fmt: skip
    assert_error(missing, 400, "invalid_parameter", field="other", reason="unknown_field")
    no_file = await api.client.post(
        f"/v1/avatars/{avatar_id}/knowledge", data={"type": "document", "title": "x"},
        files={"title2": ("a.txt", b"", "text/plain")}, headers=api.auth(key),
    )  # fmt: skip
    assert no_file.status_code == 400
    as_json = await api.client.post(
        f"/v1/avatars/{avatar_id}/knowledge", json={"type": "document"}, headers=api.auth(key)
    )
    assert_error(as_json, 400, "invalid_parameter", field="type", reason="not_allowed")
    wrong_type = await upload(api, key, avatar_id, "a.txt", "text/plain", b"hi", type="text")
    assert wrong_type.status_code == 400
    bad_meta = await upload(api, key, avatar_id, "a.txt", "text/plain", b"hi", metadata="[1]")
    assert_error(bad_meta, 400, "invalid_parameter", field="metadata")
    preset = await upload(api, key, "aria-001", "a.txt", "text/plain", b"hello")
    assert_error(preset, 403, "insufficient_permissions")
    other_key = (
        await api.state.keys.create(
            await api.state.accounts.ensure(f"acct-other-{secrets.token_hex(3)}", "enterprise"),
            mode="live",
        )
    ).secret
    foreign = await upload(api, other_key, avatar_id, "a.txt", "text/plain", b"hello")
    assert_error(foreign, 404, "avatar_not_found")
    # Nothing of the refused uploads was stored.
    listed = (
        await api.client.get(f"/v1/avatars/{avatar_id}/knowledge", headers=api.auth(key))
    ).json()["data"]
    assert listed == []


async def test_title_and_metadata_of_a_document(api: Api) -> None:
    key, _, avatar_id = await setup(api)
    response = await upload(
        api, key, avatar_id, "notes.md", "text/markdown", b"# Notes\n\nThe gate code is 4471.",
        title="Gate notes", metadata='{"team": "ops"}',
    )  # fmt: skip
    assert response.status_code == 200, response.text
    item = await settled(api, key, avatar_id, response.json()["id"])
    assert item["title"] == "Gate notes" and item["metadata"] == {"team": "ops"}
    assert item["status"] == "ready" and item["characters"] == len(
        "# Notes\n\nThe gate code is 4471."
    )


async def test_a_long_text_is_processed_in_the_background(api: Api) -> None:
    key, _, avatar_id = await setup(api)
    content = "\n\n".join(f"Section {n}. " + "The tide tables are posted weekly. " * 20
                          for n in range(12))  # fmt: skip
    response = await api.client.post(
        f"/v1/avatars/{avatar_id}/knowledge", json={"type": "text", "content": content},
        headers=api.auth(key),
    )  # fmt: skip
    assert response.status_code == 200 and response.json()["status"] == "processing"
    item = await settled(api, key, avatar_id, response.json()["id"])
    assert item["status"] == "ready" and item["characters"] == len(content)
    assert item["chunks"] >= 9


async def vector_rows(api: Api, knowledge_id: str) -> int:
    return int(
        await api.state.db.read_core(
            lambda c: c.execute(
                text(
                    "SELECT count(*) FROM knowledge_chunks WHERE knowledge_id = :k "
                    "AND embedding IS NOT NULL"
                ),
                {"k": knowledge_id},
            ).scalar_one()
        )
    )


async def test_deleting_a_document_removes_its_chunks_and_vectors(api: Api) -> None:
    key, _, avatar_id = await setup(api)
    name, ctype, build = FORMATS["docx"]
    response = await upload(api, key, avatar_id, name, ctype, build(sections(FACTS["docx"][0])))
    knowledge_id = response.json()["id"]
    item = await settled(api, key, avatar_id, knowledge_id)
    assert item["status"] == "ready"
    assert await vector_rows(api, knowledge_id) == item["chunks"] >= 1
    question = FACTS["docx"][2]
    assert (await ask(api, key, avatar_id, question))["sources"][0]["knowledge_id"] == knowledge_id
    deleted = await api.client.delete(
        f"/v1/avatars/{avatar_id}/knowledge/{knowledge_id}", headers=api.auth(key)
    )
    assert deleted.json() == {"id": knowledge_id, "object": "knowledge", "deleted": True}
    assert await vector_rows(api, knowledge_id) == 0
    assert await api.state.knowledge.chunk_count(avatar_id) == 0
    assert (await ask(api, key, avatar_id, question))["sources"] == []
    gone = await api.client.get(
        f"/v1/avatars/{avatar_id}/knowledge/{knowledge_id}", headers=api.auth(key)
    )
    assert_error(gone, 404, "knowledge_not_found")


async def test_a_document_deleted_while_queued_leaves_nothing(api: Api) -> None:
    key, _, avatar_id = await setup(api)
    name, ctype, build = FORMATS["pdf"]
    response = await upload(api, key, avatar_id, name, ctype, build(sections(FACTS["pdf"][0])))
    knowledge_id = response.json()["id"]
    await api.client.delete(
        f"/v1/avatars/{avatar_id}/knowledge/{knowledge_id}", headers=api.auth(key)
    )

    async def idle() -> bool:
        counts = await api.state.jobs.queue.counts()
        return counts.get("queued", 0) == 0 and counts.get("running", 0) == 0

    await wait_for(idle, 60, "the job queue to drain")
    assert await api.state.knowledge.chunk_count(avatar_id) == 0
