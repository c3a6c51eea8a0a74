// The console's only script (served from /static: the page's CSP runs no inline script).
// Upload: each file checked here first (type, size, contract), then sent on its own XHR so
// that it gets its own progress bar. The recent files table is refreshed every 2 s.
"use strict";

(function () {
  const ACCEPTED = /\.csv(\.gz)?$/i;

  function fill(template, fields) {
    return template.replace(/\{(\w+)\}/g, (all, name) => (name in fields ? fields[name] : all));
  }

  function humanSize(size) {
    const units = ["B", "KB", "MB", "GB"];
    let value = size, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
  }

  function refusal(form, file, contract) {
    const d = form.dataset;
    const known = Array.from(form.querySelectorAll("#contract option")).map((o) => o.value);
    if (!known.includes(contract)) return fill(d.msgUnknownContract, { contract });
    if (!ACCEPTED.test(file.name.trim())) return fill(d.msgNotCsv, { name: file.name });
    if (file.size > Number(d.maxBytes)) return fill(d.msgTooBig, { name: file.name, size: humanSize(file.size) });
    if (file.size === 0) return fill(d.msgEmpty, { name: file.name });
    return null;
  }

  function addItem(list, name) {
    const item = document.createElement("li");
    item.className = "upload-item";
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;  // text, never HTML
    const progress = document.createElement("progress");
    progress.max = 100;
    progress.value = 0;
    const message = document.createElement("span");
    message.className = "message";
    item.append(label, progress, message);
    list.prepend(item);
    return { item, progress, message };
  }

  function send(form, file, contract, list) {
    const row = addItem(list, file.name);
    const refused = refusal(form, file, contract);
    if (refused) {
      row.item.classList.add("refused");
      row.progress.remove();
      row.message.textContent = refused;
      return;
    }
    const body = new FormData();
    body.append("contract", contract);
    body.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/upload");
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) row.progress.value = Math.round((100 * event.loaded) / event.total);
    };
    xhr.onload = () => {
      let answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = {}; }
      if (xhr.status === 201) {
        row.progress.value = 100;
        row.item.classList.add("done");
        const link = document.createElement("a");
        link.href = answer.url;
        link.textContent = `${form.dataset.msgDone}: ${answer.key}`;
        row.message.append(link);
        refreshTable();
      } else {
        row.item.classList.add("refused");
        row.message.textContent = `${form.dataset.msgFailed}: ${answer.error || xhr.status}`;
      }
    };
    xhr.onerror = () => {
      row.item.classList.add("refused");
      row.message.textContent = form.dataset.msgFailed;
    };
    xhr.send(body);
  }

  function sendAll(form, files) {
    const contract = form.querySelector("#contract").value;
    const list = document.getElementById("upload-list");
    Array.from(files).forEach((file) => send(form, file, contract, list));
  }

  // One refresh at a time; one asked for meanwhile (an upload just finished) runs right after,
  // so that a new file shows up at once, as queued.
  let refreshing = false;
  let again = false;
  function refreshTable() {
    const table = document.getElementById("files-table");
    if (!table) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(table.dataset.refresh, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((response) => {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then((html) => { if (html !== null) table.innerHTML = html; })  // rendered and escaped by the server
      .catch(() => {})
      .finally(() => {
        refreshing = false;
        if (again) { again = false; refreshTable(); }
      });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("upload-form");
    if (form) {
      const input = document.getElementById("file-input");
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        sendAll(form, input.files);
        input.value = "";
      });
      const zone = document.getElementById("dropzone");
      ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
        event.preventDefault();
        zone.classList.add("over");
      }));
      ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, (event) => {
        event.preventDefault();
        zone.classList.remove("over");
      }));
      zone.addEventListener("drop", (event) => sendAll(form, event.dataTransfer.files));
    }
    if (document.getElementById("files-table")) {
      window.setInterval(() => { if (!document.hidden) refreshTable(); }, 2000);
    }
  });
})();
