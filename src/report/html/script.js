// report.html's only script: the severity and kind filters of the findings table, set by the
// check boxes or by the address (report.html?severity=high,medium&kind=undocumented).
(function () {
  "use strict";
  var boxes = document.querySelectorAll(".filters input[type=checkbox]");
  var rows = document.querySelectorAll("table.findings tbody tr");
  var shown = document.getElementById("shown");
  function wanted(name) {
    var on = {};
    boxes.forEach(function (b) {
      if (b.name === name && b.checked) on[b.value] = true;
    });
    return on;
  }
  function apply() {
    var sev = wanted("severity"), kind = wanted("kind"), n = 0;
    rows.forEach(function (r) {
      var show = !!(sev[r.dataset.severity] && kind[r.dataset.kind]);
      r.hidden = !show;
      if (show) n++;
    });
    shown.textContent = n + " of " + rows.length + " findings shown";
  }
  var query = new URLSearchParams(location.search);
  ["severity", "kind"].forEach(function (name) {
    var v = query.get(name);
    if (v === null) return;
    var keep = v.split(",");
    boxes.forEach(function (b) {
      if (b.name === name) b.checked = keep.indexOf(b.value) >= 0;
    });
  });
  // Following a link to a finding the filters hide shows its severity and kind again.
  function reveal() {
    var t = location.hash && document.getElementById(location.hash.slice(1));
    if (!t || !t.hidden || !t.dataset.severity) return;
    boxes.forEach(function (b) {
      if ((b.name === "severity" && b.value === t.dataset.severity) ||
          (b.name === "kind" && b.value === t.dataset.kind)) b.checked = true;
    });
    apply();
    t.scrollIntoView();
  }
  boxes.forEach(function (b) { b.addEventListener("change", apply); });
  window.addEventListener("hashchange", reveal);
  apply();
  reveal();
})();
