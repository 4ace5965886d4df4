// The catalog's table: "tick every finding on this page", the count of ticked findings,
// and the ticked rows highlighted. Without it the table and its bulk form still work.
(function () {
  "use strict";
  const form = document.getElementById("bulk-form");
  if (!form) return;
  const all = form.querySelector(".pick-all");
  const boxes = Array.from(form.querySelectorAll('input[name="ids"]'));
  const count = form.querySelector(".bulk-count");

  function refresh() {
    const ticked = boxes.filter(function (b) { return b.checked; }).length;
    boxes.forEach(function (b) {
      const row = b.closest("tr");
      if (row) row.classList.toggle("picked", b.checked);
    });
    if (all) {
      all.checked = ticked > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    }
    if (count) count.textContent = ticked ? ticked + " ticked" : "";
  }

  if (all) {
    all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
      refresh();
    });
  }
  boxes.forEach(function (b) { b.addEventListener("change", refresh); });
  refresh();
})();
