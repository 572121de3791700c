// Applied before first paint so a dark-theme user never sees a white flash.
(function () {
  try {
    var saved = localStorage.getItem("sandbar-theme");
    if (saved === "light" || saved === "dark") document.documentElement.dataset.theme = saved;
  } catch (e) { /* storage blocked: follow the system */ }
})();
