// The files tab: uploads with a progress bar, from the file picker or by drag and drop.
// Browsing, folders, moves and deletes are plain HTMX forms in the listing.
(function () {
  "use strict";

  var root = document.querySelector("[data-files]");
  if (!root) return;

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
  }

  function upload(fileList) {
    var drop = root.querySelector("[data-files-drop]");
    if (!drop || !fileList || !fileList.length) return;
    var box = drop.querySelector("[data-files-progress]");
    var bar = box.querySelector("progress");
    var text = box.querySelector("[data-files-progress-text]");
    var form = new FormData();
    form.append("path", drop.dataset.path);
    var total = 0;
    for (var i = 0; i < fileList.length; i++) { form.append("files", fileList[i]); total += fileList[i].size; }
    var request = new XMLHttpRequest();
    request.open("POST", root.dataset.uploadUrl);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("HX-Request", "true");
    box.hidden = false;
    bar.value = 0;
    text.textContent = "Uploading " + fileList.length + " file" + (fileList.length === 1 ? "" : "s") + "…";
    request.upload.onprogress = function (event) {
      if (!event.lengthComputable) return;
      bar.value = Math.round((event.loaded / event.total) * 100);
      text.textContent = Math.round(event.loaded / 1024).toLocaleString() + " of " + Math.round(event.total / 1024).toLocaleString() + " KiB";
    };
    request.onload = function () {
      var target = document.getElementById("files");
      if (request.status < 500 && target) {
        target.innerHTML = request.responseText;
        if (window.htmx) window.htmx.process(target);
        window.sandbar.announce("Upload finished.");
      } else {
        box.hidden = true;
        window.sandbar.toast("The upload failed (" + request.status + ").", "error");
      }
    };
    request.onerror = function () {
      box.hidden = true;
      window.sandbar.toast("The upload failed: the connection broke.", "error");
    };
    request.send(form);
  }

  root.addEventListener("change", function (event) {
    if (event.target.matches("[data-files-input]")) upload(event.target.files);
  });
  root.addEventListener("dragover", function (event) {
    var drop = event.target.closest("[data-files-drop]");
    if (!drop) return;
    event.preventDefault();
    drop.classList.add("is-over");
  });
  root.addEventListener("dragleave", function (event) {
    var drop = event.target.closest("[data-files-drop]");
    if (drop) drop.classList.remove("is-over");
  });
  root.addEventListener("drop", function (event) {
    var drop = event.target.closest("[data-files-drop]");
    if (!drop) return;
    event.preventDefault();
    drop.classList.remove("is-over");
    upload(event.dataTransfer.files);
  });
})();
