// The dashboard: the analytics overview as SVG charts drawn here (no library, no CDN), the
// usage against the monthly quota, and each webhook's deliveries with a retry button.
import { request } from "./api.js";

const KEY_STORAGE = "avatarium.apiKey";
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const ui = {
  form: $("setup-form"), key: $("api-key"), period: $("period"), problem: $("problem"),
  tiles: $("tiles"), byDay: $("by-day"), top: $("top-avatars"), deliveries: $("deliveries"),
};

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

function showProblem(error) {
  ui.problem.hidden = false;
  ui.problem.textContent = error.code ? `${error.message} (${error.code})` : String(error);
}

const number = (value) => (value === null || value === undefined ? "—" : value.toLocaleString());

function tiles(overview, usage) {
  const rows = [
    ["Conversations", number(overview.conversations)],
    ["Messages", number(overview.messages)],
    ["Average length", overview.avg_duration_s === null ? "—" : `${overview.avg_duration_s} s`],
    ["Completed", overview.completion_rate === null ? "—"
      : `${Math.round(overview.completion_rate * 100)} %`],
    ["Escalations", number(overview.escalations)],
    ["Reply time p50", overview.latency_ms.p50 === null ? "—" : `${overview.latency_ms.p50} ms`],
    ["Reply time p95", overview.latency_ms.p95 === null ? "—" : `${overview.latency_ms.p95} ms`],
    ["AI tokens", number(overview.ai_tokens)],
  ];
  ui.tiles.replaceChildren();
  for (const [label, value] of rows) {
    const box = element("div");
    box.append(element("dt", {}, label), element("dd", {}, value));
    ui.tiles.append(box);
  }
  const quota = element("div", { id: "quota" });
  const limit = usage.messages.limit;
  quota.append(element("dt", {}, "Messages this month"),
               element("dd", {}, limit === null ? `${number(usage.messages.used)} (no limit)`
                 : `${number(usage.messages.used)} / ${number(limit)}`));
  if (limit) {
    const meter = element("div", { class: "meter", role: "meter", "aria-valuemin": "0",
      "aria-valuemax": String(limit), "aria-valuenow": String(usage.messages.used) });
    const fill = element("span");
    fill.style.width = `${Math.min(100, (100 * usage.messages.used) / limit)}%`;
    meter.append(fill);
    quota.append(meter);
  }
  ui.tiles.append(quota);
}

// Bars for conversations, a line for messages, each on its own scale.
function byDayChart(days) {
  const width = 720, height = 220, left = 36, bottom = 28, top = 12;
  const plotW = width - left - 8, plotH = height - bottom - top;
  const maxC = Math.max(1, ...days.map((d) => d.conversations));
  const maxM = Math.max(1, ...days.map((d) => d.messages));
  const step = plotW / days.length;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}` });
  chart.append(svg("line", { class: "axis", x1: left, y1: top + plotH, x2: width - 8,
                             y2: top + plotH }));
  chart.append(svg("text", { x: 2, y: top + 8 }, String(maxC)));
  const points = [];
  days.forEach((day, i) => {
    const h = (day.conversations / maxC) * plotH;
    const x = left + i * step;
    const bar = svg("rect", { class: "bar-c", x: x + step * 0.15, y: top + plotH - h,
                              width: Math.max(1, step * 0.7), height: h });
    bar.append(svg("title", {}, `${day.date}: ${day.conversations} conversations, ` +
                                `${day.messages} messages`));
    chart.append(bar);
    points.push(`${x + step / 2},${top + plotH - (day.messages / maxM) * plotH}`);
    const every = Math.ceil(days.length / 8);
    if (i % every === 0) {
      chart.append(svg("text", { x: x + step / 2, y: height - 8, "text-anchor": "middle" },
                       day.date.slice(5)));
    }
  });
  chart.append(svg("polyline", { class: "line-m", points: points.join(" ") }));
  const total = days.reduce((sum, d) => sum + d.conversations, 0);
  ui.byDay.setAttribute("aria-label",
    `${total} conversations over ${days.length} days; busiest day ${maxC} conversations`);
  const legend = element("p", { class: "legend" });
  legend.innerHTML = '<span class="c">■ conversations</span> (bars, up to ' + maxC +
    ') · <span class="m">— messages</span> (line, up to ' + maxM + ")";
  ui.byDay.replaceChildren(chart, legend);
}

function topChart(avatars) {
  if (!avatars.length) {
    ui.top.replaceChildren(element("p", { class: "note" }, "No conversations in this period."));
    return;
  }
  const rowH = 26, width = 720, labelW = 180;
  const max = Math.max(...avatars.map((a) => a.conversations));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${avatars.length * rowH + 4}` });
  avatars.forEach((avatar, i) => {
    const w = ((width - labelW - 60) * avatar.conversations) / max;
    const y = i * rowH + 4;
    chart.append(svg("text", { x: 0, y: y + 15 }, avatar.name || avatar.avatar_id));
    chart.append(svg("rect", { class: "bar-c", x: labelW, y, width: Math.max(2, w),
                               height: rowH - 8 }));
    chart.append(svg("text", { x: labelW + w + 6, y: y + 15 }, String(avatar.conversations)));
  });
  ui.top.setAttribute("aria-label", avatars.map((a) =>
    `${a.name || a.avatar_id}: ${a.conversations}`).join(", "));
  ui.top.replaceChildren(chart);
}

async function deliveriesLog(key) {
  const hooks = await request("/v1/webhooks?limit=100", { credential: key });
  if (!hooks.data.length) {
    ui.deliveries.replaceChildren(element("p", { class: "note" }, "No webhooks yet."));
    return;
  }
  const parts = [];
  for (const hook of hooks.data) {
    const log = await request(`/v1/webhooks/${hook.id}/deliveries?limit=20`, { credential: key });
    const title = element("h3", {}, hook.url);
    if (!hook.enabled) title.append(` (disabled: ${hook.disabled_reason})`);
    const table = element("table", { class: "log" });
    const head = element("tr");
    for (const name of ["When", "Event", "Attempt", "Status", "Time", "Outcome", ""]) {
      head.append(element("th", { scope: "col" }, name));
    }
    table.append(head);
    for (const row of log.data) {
      const line = element("tr", { "data-delivery": row.id });
      line.append(
        element("td", {}, new Date(row.created_at).toLocaleString()),
        element("td", {}, row.event_type),
        element("td", {}, String(row.attempt)),
        element("td", {}, row.status_code === null ? "—" : String(row.status_code)),
        element("td", {}, `${row.duration_ms} ms`),
        row.error ? element("td", { class: "error" }, `${row.outcome}: ${row.error}`)
          : element("td", { class: "ok" }, row.outcome),
      );
      const cell = element("td");
      const retry = element("button", { type: "button" }, "Send again");
      retry.addEventListener("click", async () => {
        retry.disabled = true;
        try {
          await request(`/v1/webhooks/${hook.id}/deliveries/${row.id}/retry`,
                        { method: "POST", credential: key, body: {} });
          retry.textContent = "Queued";
          setTimeout(() => load().catch(showProblem), 1500);
        } catch (error) {
          retry.disabled = false;
          showProblem(error);
        }
      });
      cell.append(retry);
      line.append(cell);
      table.append(line);
    }
    if (!log.data.length) {
      const empty = element("tr");
      empty.append(element("td", { colspan: "7" }, "No deliveries yet."));
      table.append(empty);
    }
    parts.push(title, table);
  }
  ui.deliveries.replaceChildren(...parts);
}

async function load() {
  const key = ui.key.value.trim();
  if (!key) return;
  ui.problem.hidden = true;
  const [overview, usage] = await Promise.all([
    request(`/v1/analytics/overview?period=${ui.period.value}`, { credential: key }),
    request("/v1/usage", { credential: key }),
  ]);
  tiles(overview, usage);
  byDayChart(overview.by_day);
  topChart(overview.top_avatars);
  await deliveriesLog(key);
  document.body.dataset.loaded = "true";
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, ui.key.value.trim());
  load().catch(showProblem);
});
ui.period.addEventListener("change", () => load().catch(showProblem));
ui.key.value = sessionStorage.getItem(KEY_STORAGE) || "";
if (ui.key.value) load().catch(showProblem);
