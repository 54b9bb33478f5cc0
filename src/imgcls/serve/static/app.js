// The page: choose or drop an image, POST it to /predict, draw the probabilities as bars.
// Only fetch and the DOM; every text from the server or the file system is set as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

function headers(type) {
  const h = { "Content-Type": type || "application/octet-stream" };
  const token = sessionStorage.getItem("imgcls-token");
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

async function loadInfo() {
  const r = await fetch("/info", { headers: headers() });
  if (r.status === 401) { $("token-row").hidden = false; $("status").textContent = "this server needs a token"; return; }
  if (r.status === 503) { setTimeout(loadInfo, 500); return; }
  if (!r.ok) { showError("the server answered " + r.status); return; }
  info = await r.json();
  $("model").textContent = info.model + " · " + info.task + " · " + info.labels.length + " classes";
  $("status").textContent = "ready";
}

function bar(name, p, chosen, threshold) {
  const li = document.createElement("li");
  li.className = "bar" + (chosen ? " chosen" : "");
  const label = document.createElement("div");
  label.className = "label";
  const n = document.createElement("span");
  n.textContent = name;
  const v = document.createElement("span");
  v.textContent = (100 * p).toFixed(1) + " %";
  label.append(n, v);
  const track = document.createElement("div");
  track.className = "track";
  const fill = document.createElement("div");
  fill.className = "fill";
  fill.style.width = (100 * p).toFixed(2) + "%";
  track.append(fill);
  if (threshold !== undefined) {
    const t = document.createElement("div");
    t.className = "threshold";
    t.style.left = (100 * threshold).toFixed(2) + "%";
    t.title = "threshold";
    track.append(t);
  }
  li.append(label, track);
  return li;
}

function render(file, result) {
  $("filename").textContent = file.name;
  const bars = $("bars");
  bars.replaceChildren();
  if (result.task === "multilabel") {
    const chosen = new Set(result.labels.map((l) => l.class));
    $("summary").textContent = chosen.size ? "labels: " + [...chosen].join(", ") : "no label over the threshold";
    const all = result.top;
    for (const t of all) bars.append(bar(t.class, t.probability, chosen.has(t.class), result.threshold));
  } else {
    $("summary").textContent = result.label + " " + (100 * result.probability).toFixed(1) + " %";
    for (const t of result.top) bars.append(bar(t.class, t.probability, t.class === result.label));
  }
  $("result").hidden = false;
}

async function classify(file) {
  $("error").hidden = true;
  $("preview").src = URL.createObjectURL(file);
  const n = info ? Math.min(info.labels.length, info.task === "multilabel" ? info.labels.length : 5) : 5;
  const r = await fetch("/predict?topk=" + n, { method: "POST", body: file, headers: headers(file.type) });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) { $("token-row").hidden = false; showError("a token is needed"); return; }
  if (!r.ok) { showError((body.error && body.error.message) || ("the server answered " + r.status)); return; }
  render(file, body);
}

document.addEventListener("DOMContentLoaded", () => {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { if (e.target.files[0]) classify(e.target.files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) classify(e.dataTransfer.files[0]);
  });
  $("token-save").addEventListener("click", () => {
    sessionStorage.setItem("imgcls-token", $("token").value);
    $("token-row").hidden = true;
    loadInfo();
  });
  loadInfo();
});
