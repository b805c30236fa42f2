"""Knowledge: retrieval quality, document ingestion time, retrieval's cost on a send, and
how often the embedded avatar states a fact from its knowledge.

1. Retrieval evaluation (bench/knowledge_corpus.py): 70 invented product manuals in five
   formats (PDF, DOCX, HTML, Markdown, text; over 300 chunks), uploaded through the API and
   ingested by the background worker; 100 paraphrased questions whose answering chunk is
   known. recall@5 and MRR for full text only, vectors only, and hybrid.
2. A 50-page PDF: upload to ``ready``, in seconds.
3. Retrieval's cost on a send: p50 of sends (instant OpenAI-compatible upstream, no speech)
   to an avatar with 10,000 chunks against one without knowledge, in a server process.
4. The embedded avatar (SmolLM2-135M) asked about its knowledge: the share of replies that
   state the fact, with knowledge and without.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import cli, instant_env, pct, serve, unlimited_key  # noqa: E402
from instant_fake import InstantFake  # noqa: E402
from knowledge_corpus import Manual, lookups, manuals, questions  # noqa: E402
from tests.documents import (  # noqa: E402
    docx_bytes,
    html_bytes,
    markdown_bytes,
    pdf_bytes,
    text_bytes,
)

from avatarium.app import create_app  # noqa: E402
from avatarium.core.settings import Settings  # noqa: E402
from avatarium.knowledge.retrieval import search  # noqa: E402
from avatarium.knowledge.service import CANDIDATES, DENSE_FLOOR  # noqa: E402

FORMATS = [
    ("pdf", "application/pdf", pdf_bytes),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     docx_bytes),
    ("html", "text/html", html_bytes),
    ("md", "text/markdown", markdown_bytes),
    ("txt", "text/plain", text_bytes),
]  # fmt: skip


def line(label: str, value: str) -> None:
    print(f"  {label:<58} {value}")


class InProcess:
    """The app in this process on a fresh SQLite file, driven over ASGI."""

    def __init__(self, **settings: Any) -> None:
        self.dir = tempfile.mkdtemp(prefix="avatarium-kn-")
        self.settings = Settings(data_dir=Path(self.dir), log_level="warning", **settings)
        self.app = create_app(self.settings)
        self.state = self.app.state.avatarium

    async def __aenter__(self) -> InProcess:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600)
        account = await self.state.accounts.ensure("bench-knowledge", "enterprise")
        self.key = (await self.state.keys.create(account, mode="live")).secret
        self.headers = {"Authorization": f"Bearer {self.key}"}
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self._lifespan.__aexit__(None, None, None)

    async def avatar(self, **fields: Any) -> str:
        body = {"name": "Bench", "tts_provider": "browser", **fields}
        response = await self.client.post("/v1/avatars", json=body, headers=self.headers)
        response.raise_for_status()
        return str(response.json()["id"])

    async def upload(self, avatar_id: str, name: str, ctype: str, data: bytes) -> str:
        response = await self.client.post(
            f"/v1/avatars/{avatar_id}/knowledge",
            data={"type": "document"},
            files={"file": (name, data, ctype)},
            headers=self.headers,
        )
        response.raise_for_status()
        return str(response.json()["id"])

    async def wait_ready(self, avatar_id: str, ids: list[str], within: float) -> list[dict]:
        deadline = time.monotonic() + within
        while True:
            response = await self.client.get(
                f"/v1/avatars/{avatar_id}/knowledge", headers=self.headers
            )
            response.raise_for_status()
            listed = response.json()["data"]
            items = [item for item in listed if item["id"] in ids]
            if all(item["status"] != "processing" for item in items):
                failed = [item for item in items if item["status"] == "failed"]
                if failed:
                    raise RuntimeError(f"ingestion failed: {failed[0]['error']}")
                return items
            if time.monotonic() > deadline:
                raise RuntimeError(f"documents not ready after {within:.0f} s")
            await asyncio.sleep(0.2)


def _rank(hits: list[int], contents: dict[int, str], answer: str) -> int | None:
    for rank, chunk_id in enumerate(hits, 1):
        if answer in contents[chunk_id]:
            return rank
    return None


def _scores(ranks: list[int | None]) -> tuple[float, float]:
    recall = sum(1 for r in ranks if r is not None and r <= 5) / len(ranks)
    mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
    return recall, mrr


async def _ingest_corpus(run: InProcess, avatar_id: str, all_manuals: list[Manual]) -> float:
    started = time.perf_counter()
    ids = []
    for index, manual in enumerate(all_manuals):
        ext, ctype, build = FORMATS[index % len(FORMATS)]
        ids.append(await run.upload(avatar_id, f"manual-{index}.{ext}", ctype,
                                    build(manual.sections)))  # fmt: skip
    await run.wait_ready(avatar_id, ids, within=900)
    return time.perf_counter() - started


async def retrieval_eval() -> None:
    print("Knowledge retrieval: 100 paraphrased questions and 20 part-code lookups over "
          "invented product manuals")  # fmt: skip
    all_manuals = manuals(36)
    asked = questions(all_manuals, 100)
    quoted = lookups(all_manuals, 20)
    async with InProcess() as run:
        avatar_id = await run.avatar()
        took = await _ingest_corpus(run, avatar_id, all_manuals)
        knowledge = run.state.knowledge
        chunks = await knowledge.chunk_count(avatar_id)
        line("corpus", f"{len(all_manuals)} manuals in 5 formats, {chunks} chunks")
        line("ingestion (upload to ready, background worker)", f"{took:.1f} s")
        db = run.state.db
        rows = await db.read_core(
            lambda c: c.exec_driver_sql(
                "SELECT id, content FROM knowledge_chunks WHERE avatar_id = ?", (avatar_id,)
            ).all()
        )
        contents = {int(r[0]): str(r[1]) for r in rows}
        embedder = knowledge.indexer.embedder("live")
        revision = await db.read_core(
            lambda c: c.exec_driver_sql(
                "SELECT knowledge_revision FROM avatars WHERE id = ?", (avatar_id,)
            ).scalar_one()
        )
        from avatarium.knowledge.vectors import load_matrix

        matrix = await db.read_core(lambda c: load_matrix(c, avatar_id, embedder.space))
        ranks: dict[str, list[int | None]] = {"full text": [], "vectors": [], "hybrid": []}
        timings: list[float] = []
        relevance: list[tuple[float, bool]] = []
        for fact in asked + quoted:
            lexical = await db.read_core(
                lambda c, q=fact.question: search(c, avatar_id, q, CANDIDATES)
            )
            ranks["full text"].append(_rank([h.chunk_id for h in lexical], contents, fact.answer))
            query = await embedder.embed([fact.question], query=True)
            dense = matrix.nearest(query[0], CANDIDATES, DENSE_FLOOR)
            ranks["vectors"].append(_rank([c for c, _ in dense], contents, fact.answer))
            started = time.perf_counter()
            hybrid = await knowledge.retrieve(avatar_id, fact.question, limit=5)
            timings.append((time.perf_counter() - started) * 1000)
            ranks["hybrid"].append(_rank([h.chunk_id for h in hybrid], contents, fact.answer))
            for hit in hybrid:
                relevance.append((hit.score, fact.answer in hit.content))
        for name, found in ranks.items():
            recall, mrr = _scores(found[: len(asked)])
            code_recall, code_mrr = _scores(found[len(asked) :])
            line(f"{name}: recall@5 / MRR (paraphrases; part codes)",
                 f"{recall:.2f} / {mrr:.3f};  {code_recall:.2f} / {code_mrr:.3f}")  # fmt: skip
        line(f"hybrid retrieval, {chunks} chunks: p50 / p99",
             f"{pct(timings, 50):.1f} / {pct(timings, 99):.1f} ms")  # fmt: skip
        answering = [s for s, ok in relevance if ok]
        other = [s for s, ok in relevance if not ok]
        line("cosine of answering / other hits (median)",
             f"{statistics.median(answering):.3f} / {statistics.median(other):.3f}")  # fmt: skip
        del revision


async def pdf_ingestion(pages: int = 50) -> None:
    print(f"Ingestion of {pages}-page PDFs, upload to ready")
    all_manuals = manuals(120)
    typical = [s for m in all_manuals for s in m.sections]
    # Dense: each section one long paragraph, as in a contract or a policy.
    dense = [(heading, [" ".join(paragraphs * 2)]) for heading, paragraphs in typical]
    async with InProcess() as run:
        avatar_id = await run.avatar()
        for label, sections in (("typical layout", typical), ("dense prose", dense)):
            data = pdf_bytes(sections, max_pages=pages)
            started = time.perf_counter()
            kn = await run.upload(avatar_id, "handbook.pdf", "application/pdf", data)
            items = await run.wait_ready(avatar_id, [kn], within=600)
            took = time.perf_counter() - started
            item = items[0]
            line(f"{label}: {item['characters'] / pages:,.0f} characters a page, "
                 f"{item['chunks']} chunks", f"{took:.1f} s")  # fmt: skip


def send_cost(chunks: int = 10_000, sends: int = 200) -> None:
    print(f"Retrieval's cost on a send: {chunks:,} chunks against none (server process)")
    with InstantFake() as fake, tempfile.TemporaryDirectory() as data_dir:
        _send_cost(instant_env(data_dir, fake.url), chunks, sends)


def _send_cost(env: dict[str, str], chunks: int, sends: int) -> None:
    if True:
        cli(env, "migrate")
        key = unlimited_key(env, "bench-kn-send")
        port = 8791
        server = serve(env, port)
        try:
            base = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                body = {"name": "Bench", "ai_provider": "openai", "tts_provider": "browser"}
                with_knowledge = client.post("/v1/avatars", json=body).json()["id"]
                without = client.post("/v1/avatars", json=body).json()["id"]
                _fill(env, with_knowledge, chunks)
                figures = {}
                cases = (("no knowledge", without), ("10,000 chunks", with_knowledge))
                # Every question different: a repeated one would come from the cache of
                # question vectors (measured apart below).
                asked = [f.question for f in questions(manuals(200), sends + 10)]
                for label, avatar_id in cases:
                    conv = client.post("/v1/conversations", json={"avatar_id": avatar_id}).json()
                    path = f"/v1/conversations/{conv['id']}/messages"
                    latencies = []
                    for index, question in enumerate(asked):
                        started = time.perf_counter()
                        response = client.post(path, json={"content": question, "tts": False})
                        response.raise_for_status()
                        if index >= 10:
                            latencies.append((time.perf_counter() - started) * 1000)
                    figures[label] = latencies
                    line(f"{label}: send p50 / p99",
                         f"{pct(latencies, 50):.1f} / {pct(latencies, 99):.1f} ms")  # fmt: skip
                conv = client.post("/v1/conversations", json={"avatar_id": with_knowledge}).json()
                path = f"/v1/conversations/{conv['id']}/messages"
                again = []
                for question in asked[10:60]:  # asked before: their vectors are cached
                    started = time.perf_counter()
                    client.post(path, json={"content": question, "tts": False}).raise_for_status()
                    again.append((time.perf_counter() - started) * 1000)
                added = pct(figures["10,000 chunks"], 50) - pct(figures["no knowledge"], 50)
                line("retrieval adds (p50)", f"{added:.1f} ms")
                repeat = pct(again, 50) - pct(figures["no knowledge"], 50)
                line("... for a question asked before (its vector cached)", f"{repeat:.1f} ms")
        finally:
            server.terminate()
            server.wait(10)


def _fill(env: dict[str, str], avatar_id: str, count: int) -> None:
    """``count`` chunks straight into the database: generated manual text, and vectors of
    500 real embeddings repeated with noise (a search's cost does not depend on the values;
    embedding 10,000 chunks would take 20 minutes on 2 cores)."""
    import sqlite3

    from avatarium.providers.embeddings.e5 import E5Embeddings

    all_manuals = manuals(200)
    texts = [f"{h}\n\n" + "\n\n".join(ps) for m in all_manuals for h, ps in m.sections]
    embedder = E5Embeddings()
    base = embedder.embed_now(texts[:500], query=False)
    rng = np.random.default_rng(7)
    database = Path(env["AVATARIUM_DATA_DIR"]) / "avatarium.db"
    connection = sqlite3.connect(database)
    now = "2026-01-01 00:00:00.000000"
    with connection:
        connection.execute(
            "INSERT INTO knowledge (id, avatar_id, type, title, status, chunks, characters, "
            "error, metadata, created_at, updated_at) VALUES (?, ?, 'document', 'Bulk', "
            "'ready', ?, 0, NULL, '{}', ?, ?)",
            ("kn_bulk", avatar_id, count, now, now),
        )
        rows = []
        for index in range(count):
            vector = base[index % len(base)] + rng.normal(0, 0.01, base.shape[1])
            vector = (vector / np.linalg.norm(vector)).astype("<f4")
            rows.append(("kn_bulk", avatar_id, index, texts[index % len(texts)],
                         vector.tobytes(), embedder.space))  # fmt: skip
        connection.executemany(
            "INSERT INTO knowledge_chunks (knowledge_id, avatar_id, position, content, "
            "embedding, embedding_space) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        connection.execute(
            "UPDATE avatars SET knowledge_revision = knowledge_revision + 1 WHERE id = ?",
            (avatar_id,),
        )
    connection.close()


async def answer_rate(count: int = 25) -> None:
    print(f"The embedded avatar asked {count} questions about its knowledge")
    all_manuals = manuals(12)
    asked = questions(all_manuals, count)
    async with InProcess(local_temperature=0.0, local_max_tokens=48) as run:
        informed = await run.avatar(ai_provider="local")
        blank = await run.avatar(ai_provider="local")
        ids = []
        for index, manual in enumerate(all_manuals):
            ext, ctype, build = FORMATS[index % len(FORMATS)]
            ids.append(await run.upload(informed, f"m{index}.{ext}", ctype, build(manual.sections)))
        await run.wait_ready(informed, ids, within=600)
        for label, avatar_id in (("with knowledge", informed), ("without knowledge", blank)):
            stated = 0
            for fact in asked:
                conv = (
                    await run.client.post(
                        "/v1/conversations", json={"avatar_id": avatar_id}, headers=run.headers
                    )
                ).json()
                reply = (
                    await run.client.post(
                        f"/v1/conversations/{conv['id']}/messages",
                        json={"content": fact.question, "tts": False},
                        headers=run.headers,
                    )
                ).json()
                if fact.stated_in(reply["content"]):
                    stated += 1
            line(f"{label}: replies stating the fact", f"{stated}/{count} ({stated / count:.0%})")


def bench_knowledge() -> None:
    asyncio.run(retrieval_eval())
    print()
    asyncio.run(pdf_ingestion())
    print()
    send_cost()
    print()
    asyncio.run(answer_rate())


if __name__ == "__main__":
    os.environ.setdefault("AVATARIUM_LOG_LEVEL", "warning")
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    {"eval": lambda: asyncio.run(retrieval_eval()), "pdf": lambda: asyncio.run(pdf_ingestion()),
     "send": send_cost, "answers": lambda: asyncio.run(answer_rate()),
     "all": bench_knowledge}[which]()  # fmt: skip
