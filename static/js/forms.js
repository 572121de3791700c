// Forms: a snapshot's source box follows the chosen kind; volume rows get a real mount
// path when a volume is picked; a row added by copying a refused one starts clean.
// No inline scripts anywhere (the CSP forbids them): everything hangs off data-* attributes.
(function () {
  "use strict";

  // --- A snapshot's source: its label and help say what to type for the chosen kind. ---
  function followKind(select) {
    var option = select.options[select.selectedIndex];
    var form = select.form;
    if (!option || !form) return;
    var label = form.querySelector("[data-source-label]");
    var help = form.querySelector("[data-source-help]");
    if (label) label.textContent = option.getAttribute("data-label");
    if (help) help.textContent = option.getAttribute("data-help");
  }

  // --- Volume rows: picking a volume for an empty path fills in a path of its own. ------
  function fillMountPath(select) {
    var row = select.closest(".volume-row");
    var path = row && row.querySelector("input[name=volume_path]");
    var option = select.options[select.selectedIndex];
    if (!path || !option || !option.value || path.value.trim()) return;
    path.value = "/home/daytona/" + option.getAttribute("data-name");
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("select[data-source-kind]")) followKind(target);
    else if (target.matches(".volume-row select[name=volume_id]")) fillMountPath(target);
  });

  // sandboxes.js copies the last row for "Add": a copy of a refused row must not carry
  // its error. This listener runs after that one (this file loads after it).
  document.addEventListener("click", function (event) {
    var add = event.target.closest("[data-kv-add]");
    if (!add) return;
    var box = document.querySelector('[data-kv="' + add.getAttribute("data-kv-add") + '"]');
    var rows = box ? box.querySelectorAll(".kv-row") : [];
    var row = rows[rows.length - 1];
    if (!row) return;
    row.querySelectorAll(".field-error").forEach(function (error) { error.remove(); });
    row.querySelectorAll("[aria-invalid]").forEach(function (input) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    });
  });

  document.querySelectorAll("select[data-source-kind]").forEach(followKind);
})();
