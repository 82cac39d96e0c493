// claude-vm's web UI. Everything that comes from a session (the agent's text, tool inputs,
// file names, diffs) is inserted as text (textContent), never as HTML.

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

let authFailed = false;

function showAuthError(text) {
  authFailed = true;
  const p = $("auth-error");
  p.textContent = text;
  p.hidden = false;
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (r.status === 401 || r.status === 429) {
    showAuthError(`Access refused (${r.status}): ${data && data.error ? data.error : "log in with the URL claude-vm web printed"}`);
  }
  if (!r.ok) {
    const err = new Error(data && data.error ? data.error : `HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return data;
}

async function login() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = params.get("token") || params.get("launch");
  if (token) {
    // Out of the address bar (and its history) at once.
    history.replaceState(null, "", location.pathname + "#/sessions");
    try {
      await api("POST", "/api/login", { token });
    } catch (e) {
      if (!authFailed) showAuthError(`Access refused: ${e.message}`);
      return false;
    }
  }
  try {
    await api("GET", "/api/sessions");
    return true;
  } catch (e) {
    if (!authFailed) showAuthError(`Not logged in: ${e.message}`);
    return false;
  }
}

function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleString() : "";
}

function fmtElapsed(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(s / 60);
  return m ? `${m}m ${s % 60}s` : `${s}s`;
}

function stateText(r) {
  if (r.state === "running" && r.stop_requested) return "stopping";
  return r.state;
}

// ---- views ----

function show(view) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${view}`;
}

let current = null; // the session view's state

async function route() {
  if (current) { current.close(); current = null; }
  const h = location.hash;
  const m = h.match(/^#\/session\/([0-9a-f-]+)$/);
  if (m) return openSession(m[1]);
  if (h === "#/start") { show("start"); return loadStartForm(); }
  if (h === "#/projects") { show("projects"); return loadProjects(); }
  show("sessions");
  return loadSessions();
}

async function loadSessions() {
  let data;
  try { data = await api("GET", "/api/sessions"); } catch (_) { return; }
  const rows = data.sessions.filter((s) => s.kind === "session");
  const others = data.elsewhere || [];
  const body = $("sessions-body");
  body.replaceChildren();
  $("sessions-empty").hidden = rows.length + others.length > 0;
  const from = (w) => (w === true ? "warm pool" : w === false ? "cold boot" : "");
  // Live ones first: this page's, then those started elsewhere (a terminal, an MCP server).
  const live = (s) => s.state === "running" || s.state === "starting";
  for (const s of [...rows.filter(live), null, ...rows.filter((s) => !live(s))]) {
    if (s === null) {
      for (const o of others) {
        const tr = el("tr", "elsewhere");
        tr.dataset.vm = o.vm;
        const cells = ["running", o.project, "(started outside this page)", o.vm, fmtTime(o.started_at),
          `pid ${o.owner_pid}`, from(o.warm), o.policy || "", "view only: stop it where it was started"];
        for (const c of cells) tr.append(el("td", null, c));
        body.append(tr);
      }
      continue;
    }
    const tr = el("tr");
    tr.dataset.id = s.id;
    const cells = [stateText(s), s.project, s.prompt.slice(0, 80), s.vm || "", fmtTime(s.started_at),
      s.owner_pid ? `pid ${s.owner_pid}` : "", from(s.warm), s.policy || s.network || "",
      live(s) ? "stop, watch" : "review, continue"];
    for (const c of cells) tr.append(el("td", null, c));
    tr.addEventListener("click", () => { location.hash = `#/session/${s.id}`; });
    body.append(tr);
  }
}

async function loadStartForm() {
  let data;
  try { data = await api("GET", "/api/projects"); } catch (_) { return; }
  const sel = $("start-project");
  const keep = sel.value;
  sel.replaceChildren();
  for (const p of data.projects) {
    const o = el("option", null, p.path);
    o.value = p.id;
    sel.append(o);
  }
  if (keep) sel.value = keep;
}

// Each project's last rebuild log, kept when the list is drawn again.
const rebuildLogs = {};

async function loadProjects() {
  let data;
  try { data = await api("GET", "/api/projects"); } catch (_) { return; }
  const list = $("projects-list");
  list.replaceChildren();
  $("projects-empty").hidden = data.projects.length > 0;
  for (const p of data.projects) {
    const box = el("div", "project");
    box.dataset.id = p.id;
    box.append(el("strong", null, p.path));
    box.append(el("div", "small", `template ${p.id}, built ${fmtTime(p.built_at * 1000)} by claude-vm ${p.claude_vm_version}`));
    const state = p.up_to_date === true ? "up to date"
      : p.up_to_date === false ? `out of date: ${p.reasons.join("; ")}` : p.reasons.join("; ");
    box.append(el("div", "state", state));
    box.append(el("div", null, `tools: ${p.tools.length ? p.tools.join(", ") : "none"}`));
    const size = p.size_bytes == null ? "" : `, ${(p.size_bytes / 1e9).toFixed(2)} GB on disk`;
    box.append(el("div", null, `${p.disk_gb} GB disk, ${p.memory_gb} GB memory, ${p.cpus} CPUs${size}`));
    const btn = el("button", "rebuild", "Rebuild");
    const log = el("pre", "rebuild-log", rebuildLogs[p.id] || "");
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      log.textContent = rebuildLogs[p.id] = "";
      try {
        const job = await api("POST", `/api/projects/${encodeURIComponent(p.id)}/rebuild`, {});
        follow(job.id, (m) => {
          rebuildLogs[p.id] = (rebuildLogs[p.id] || "") + describeLine(m) + "\n";
          log.textContent = rebuildLogs[p.id];
        }, (r) => { btn.disabled = r.state === "running" || r.state === "starting"; if (!btn.disabled) loadProjects(); });
      } catch (e) {
        log.textContent = `cannot rebuild: ${e.message}`;
        btn.disabled = false;
      }
    });
    box.append(btn, log);
    list.append(box);
  }
}

// A job's SSE stream: every message from the first, then live ones; `record` updates.
function follow(id, onMessage, onRecord) {
  const es = new EventSource(`/api/sessions/${id}/events`);
  es.addEventListener("message", (ev) => onMessage(JSON.parse(ev.data)));
  es.addEventListener("record", (ev) => onRecord(JSON.parse(ev.data)));
  es.addEventListener("end", () => es.close());
  return es;
}

// One line for a rebuild's log.
function describeLine(m) {
  const d = m.data;
  if (!d) return m.text;
  if (d.type === "step.started") return `… ${d.step}`;
  if (d.type === "step.finished") return `✓ ${d.step} (${fmtElapsed(d.duration_ms)})`;
  if (d.type === "step.failed") return `✗ ${d.step}`;
  if (d.message) return `${d.type}: ${d.message}${d.hint ? ` (${d.hint})` : ""}`;
  if (d.line) return d.line;
  return JSON.stringify(d);
}

// ---- the session view ----

const FOLD = 600;

function folded(summary, text) {
  const t = String(text);
  if (t.length <= FOLD && t.split("\n").length <= 12) return el("pre", null, t);
  const d = el("details");
  d.append(el("summary", null, `${summary} (${t.split("\n").length} lines, ${t.length} characters)`));
  d.append(el("pre", null, t));
  return d;
}

function contentText(c) {
  if (typeof c === "string") return c;
  if (Array.isArray(c)) return c.map((b) => (b.type === "text" ? b.text : JSON.stringify(b))).join("\n");
  return JSON.stringify(c);
}

function renderMessage(m) {
  const d = m.data;
  if (!d) return [el("div", "m-event", m.text)];
  if (m.source === "claude") {
    if (d.type === "system") return [el("div", "m-event", `claude ${d.subtype || ""}: model ${d.model || "?"}, session ${d.session_id || "?"}`)];
    if (d.type === "assistant" && d.message) {
      const out = [];
      for (const b of d.message.content || []) {
        if (b.type === "text") out.push(el("div", "m-text", b.text));
        else if (b.type === "tool_use") {
          const box = el("div", "m-tool");
          box.append(el("strong", null, `tool call: ${b.name}`));
          box.append(folded("input", JSON.stringify(b.input, null, 2)));
          out.push(box);
        } else if (b.type === "thinking") out.push(folded("thinking", b.thinking || ""));
      }
      return out;
    }
    if (d.type === "user" && d.message) {
      const out = [];
      for (const b of Array.isArray(d.message.content) ? d.message.content : []) {
        if (b.type === "tool_result") {
          const box = el("div", "m-tool");
          box.append(el("strong", null, b.is_error ? "tool result (error)" : "tool result"));
          box.append(folded("result", contentText(b.content)));
          out.push(box);
        }
      }
      return out;
    }
    if (d.type === "result") {
      const box = el("div", "m-result");
      box.append(el("strong", null, `result: ${d.subtype}, ${d.num_turns} turns, $${Number(d.total_cost_usd || 0).toFixed(4)}`));
      if (d.result) box.append(el("div", "m-text", d.result));
      return [box];
    }
    return [folded(d.type || "message", JSON.stringify(d))];
  }
  if (m.source === "server") return [el("div", "m-event server-note", d.message)];
  // claude-vm's events (docs/events.md).
  switch (d.type) {
    case "session.started":
      return [el("div", "m-event", `VM ${d.vm} is up (${d.warm ? "from the warm pool" : "cold boot"}, network ${d.policy})`)];
    case "session.ended":
      return [el("div", "m-event", `claude-vm: the session ended with exit status ${d.exit_status}; VM ${d.vm_deleted ? "deleted" : "NOT deleted"}`)];
    case "audit.finding":
      return [el("div", "m-warn", `audit: ${d.change} ${d.what}: ${d.reason}`)];
    case "warning": return [el("div", "m-warn", `warning: ${d.message}`)];
    case "alert": return [el("div", "m-warn", `${d.message}\n${(d.lines || []).join("\n")}`)];
    case "error": return [el("div", "m-error", `error: ${d.message}${d.hint ? `\nhint: ${d.hint}` : ""}`)];
    case "guest.stderr": return [el("pre", "m-event", d.line)];
    default: return [el("div", "m-event", describeLine(m))];
  }
}

function metaRow(dl, k, v) {
  dl.append(el("dt", null, k), el("dd", null, v));
}

async function openSession(id) {
  show("session");
  const view = { record: null, es: null, timer: null, reviewed: false };
  view.close = () => { if (view.es) view.es.close(); clearInterval(view.timer); };
  current = view;
  $("messages").replaceChildren();
  $("review").hidden = true;
  $("continue-form").hidden = true;
  $("session-banner").hidden = true;
  $("session-title").textContent = `Session ${id}`;
  const paint = () => {
    const r = view.record;
    if (!r) return;
    const dl = $("session-meta");
    dl.replaceChildren();
    const live = r.state === "running" || r.state === "starting";
    const elapsed = (r.ended_at || Date.now()) - r.started_at;
    metaRow(dl, "state", stateText(r));
    metaRow(dl, "project", r.project);
    metaRow(dl, "prompt", r.prompt);
    metaRow(dl, "VM", r.vm || "(not yet)");
    metaRow(dl, "started", fmtTime(r.started_at));
    metaRow(dl, "elapsed", fmtElapsed(elapsed));
    metaRow(dl, "turns", r.num_turns ?? "");
    metaRow(dl, "cost", r.total_cost_usd == null ? "" : `$${r.total_cost_usd.toFixed(4)}`);
    metaRow(dl, "owner", r.owner_pid ? `pid ${r.owner_pid}` : "");
    metaRow(dl, "VM from", r.warm === true ? "warm pool" : r.warm === false ? "cold boot" : "");
    metaRow(dl, "network", r.policy || r.network || "");
    if (r.continues) metaRow(dl, "continues", r.continues);
    if (r.error) metaRow(dl, "error", r.error);
    $("session-state").textContent = stateText(r);
    $("stop").hidden = !live || r.stop_requested;
    const banner = $("session-banner");
    if (r.state === "stopped") {
      banner.textContent = r.vm_deleted ? `Stopped: the VM ${r.vm} was deleted.`
        : r.vm ? `Stopped; the VM ${r.vm} was not reported deleted (claude-vm gc removes it).` : "Stopped before a VM was started.";
      banner.hidden = false;
    } else if (live && r.stop_requested) {
      banner.textContent = "Stopping: claude-vm is deleting the VM…";
      banner.hidden = false;
    } else banner.hidden = true;
    $("continue-form").hidden = live || r.kind !== "session" || !r.claude_session_id;
    if (!live && !view.reviewed && r.kind === "session") { view.reviewed = true; loadReview(r.id); }
  };
  const stateEl = el("span");
  stateEl.id = "session-state";
  $("session-title").append(" — ", stateEl);
  view.es = follow(id, (m) => { for (const n of renderMessage(m)) $("messages").append(n); },
    (r) => { view.record = r; paint(); });
  view.timer = setInterval(paint, 1000);
  $("stop").onclick = async () => {
    try { view.record = await api("POST", `/api/sessions/${id}/stop`, {}); paint(); }
    catch (e) { $("session-banner").textContent = `cannot stop: ${e.message}`; $("session-banner").hidden = false; }
  };
  $("continue-form").onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", `/api/sessions/${id}/continue`, { prompt: $("continue-prompt").value });
      $("continue-prompt").value = "";
      location.hash = `#/session/${r.id}`;
    } catch (e) { $("continue-error").textContent = e.message; $("continue-error").hidden = false; }
  };
}

function reviewStatus(text) {
  const p = $("review-status");
  p.textContent = text;
  p.hidden = false;
}

// The clipboard, saying what happened (a page without clipboard access says so).
async function copy(what, text) {
  try {
    await navigator.clipboard.writeText(text);
    reviewStatus(`Copied the ${what} (${text.length} characters).`);
  } catch (e) {
    reviewStatus(`Cannot copy the ${what} here (${e.message}): select it below instead.`);
  }
}

async function loadReview(id) {
  let r;
  try { r = await api("GET", `/api/sessions/${id}/review`); } catch (_) { return; }
  $("review").hidden = false;
  $("folder").textContent = r.project;
  $("review-status").hidden = true;
  $("copy-folder").onclick = () => copy("folder's path", r.project);
  $("open-folder").onclick = async () => {
    try {
      await api("POST", `/api/sessions/${id}/open-folder`, {});
      reviewStatus(`Opened ${r.project} on this computer's desktop.`);
    } catch (e) { reviewStatus(`Cannot open the folder: ${e.message}`); }
  };
  const note = $("review-note");
  note.hidden = !r.files_note;
  note.textContent = r.files_note ? `No file list: ${r.files_note}` : "";
  const files = $("review-files");
  const diffs = $("review-diffs");
  files.replaceChildren();
  diffs.replaceChildren();
  if (!r.files_note && r.files.length === 0) files.append(el("li", null, "no files changed"));
  for (const f of r.files) {
    files.append(el("li", `file-${f.status}`, `${f.status} ${f.path}`));
    const box = el("div");
    box.append(el("strong", null, f.path));
    box.append(el("pre", "diff", f.binary ? "(binary file)" : f.diff + (f.truncated ? "\n… (cut)" : "")));
    diffs.append(box);
  }
  $("copy-diff").onclick = () => copy("diff", r.files.map((f) => f.diff).join(""));
  const audit = $("review-audit");
  audit.replaceChildren();
  if (r.audit_findings.length === 0) audit.append(el("li", null, "nothing that runs on your host was changed"));
  for (const a of r.audit_findings) audit.append(el("li", "m-warn", `${a.change} ${a.what}: ${a.reason}`));
  const net = $("review-network");
  net.replaceChildren();
  if (r.network.note) net.append(el("li", "small", r.network.note));
  for (const h of r.network.hosts || []) {
    net.append(el("li", h.denied ? "m-warn" : null, `${h.host}: ${h.allowed} allowed, ${h.denied} denied`));
  }
}

// ---- start ----

$("start-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const args = $("start-args").value.split("\n").map((s) => s.trim()).filter((s) => s.length);
  const body = {
    project: $("start-project").value,
    prompt: $("start-prompt").value,
    model: $("start-model").value.trim() || null,
    claude_args: args,
    network: $("start-network").value.trim() || null,
  };
  try {
    const r = await api("POST", "/api/sessions", body);
    $("start-error").hidden = true;
    location.hash = `#/session/${r.id}`;
  } catch (e) {
    $("start-error").textContent = `Not started: ${e.message}`;
    $("start-error").hidden = false;
  }
});

// The lists follow every change (another tab, a session ending) without a reload.
function watchLists() {
  const es = new EventSource("/api/stream");
  let pending = null;
  es.addEventListener("changed", () => {
    clearTimeout(pending);
    pending = setTimeout(() => {
      if (!$("view-sessions").hidden) loadSessions();
    }, 150);
  });
  // Sessions started elsewhere change no record of ours: looked at again every few seconds.
  setInterval(() => { if (!$("view-sessions").hidden) loadSessions(); }, 3000);
  es.onopen = () => { $("conn").textContent = "connected"; };
  es.onerror = () => { $("conn").textContent = "reconnecting…"; };
}

window.addEventListener("hashchange", route);
login().then((ok) => {
  if (!ok) return;
  watchLists();
  route();
});
