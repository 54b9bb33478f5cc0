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

function describeInput(input, colorSpace) {
  const [c, h, w] = input;
  const names = { gray: "grayscale", rgb: "RGB" };
  const colour = names[colorSpace] || colorSpace || (c === 1 ? "grayscale" : "RGB");
  return w + " × " + h + " px, " + colour + " (" + c + " channel" + (c === 1 ? "" : "s") + ")";
}

function showInfo() {
  $("model").textContent = info.model || "a model";
  const n = info.labels.length;
  $("status").textContent = "ready: " + n + " classes, " + info.task + ", input " + info.input_size[2] + " × "
    + info.input_size[1] + " px";
  $("about-summary").textContent = "about this model";
  const rows = [
    ["model", info.model || "(unnamed)"],
    ["runs on", info.backend],
    ["task", info.task + (info.task === "multiclass" ? "" : ", threshold " + info.threshold)],
    ["input", describeInput(info.input_size, info.color_space)],
    ["classes (" + n + ")", info.labels.join(", ")],
  ];
  const list = $("about-list");
  list.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    list.append(dt, dd);
  }
  $("about").hidden = false;
}

async function loadInfo() {
  const r = await fetch("/info", { headers: headers() });
  if (r.status === 401) { $("token-row").hidden = false; $("status").textContent = "this server needs a token"; return; }
  if (r.status === 503) { setTimeout(loadInfo, 500); return; }
  if (!r.ok) { showError("the server answered " + r.status); return; }
  info = await r.json();
  showInfo();
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

function showPreview(file) {
  const img = $("preview");
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  img.dataset.url = URL.createObjectURL(file);
  img.hidden = false;
  $("dimensions").textContent = "";
  img.onload = () => { $("dimensions").textContent = img.naturalWidth + " × " + img.naturalHeight + " px"; };
  img.onerror = () => { img.hidden = true; $("dimensions").textContent = "(this browser cannot show the image)"; };
  img.src = img.dataset.url;
}

async function classify(file) {
  $("error").hidden = true;
  $("result").hidden = true;  // nothing of the last image stays on screen beside a new answer or error
  const n = info ? Math.min(info.labels.length, info.task === "multilabel" ? info.labels.length : 5) : 5;
  let r;
  try {
    r = await fetch("/predict?topk=" + n, { method: "POST", body: file, headers: headers(file.type) });
  } catch (e) {
    showError("“" + file.name + "” could not be sent: the server cannot be reached (" + e.message + ")");
    return;
  }
  const body = await r.json().catch(() => ({}));
  const said = (body.error && body.error.message) || ("the server answered " + r.status);
  if (r.status === 401) { $("token-row").hidden = false; showError("a token is needed"); return; }
  if (r.status === 415) {
    showError("“" + file.name + "” is not an image" + (file.type ? " (" + file.type + ")" : "")
      + ": choose a JPEG, PNG, GIF, BMP, WebP or TIFF file. The server said: " + said);
    return;
  }
  if (!r.ok) { showError("“" + file.name + "”: " + said); return; }
  showPreview(file);
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
