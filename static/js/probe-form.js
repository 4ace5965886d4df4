// Probes, on the probe form and as rows of the finding form: when a kind is chosen, show
// its default parameters and comparator; "Add another probe" adds a row to the finding form.
(function () {
  "use strict";
  function attach(container) {
    // getAttribute, not form.dataset: the form's own "dataset" field shadows that property.
    const defaults = JSON.parse(container.getAttribute("data-defaults") || "{}");
    const comparators = JSON.parse(container.getAttribute("data-comparators") || "{}");

    function wire(scope) {
      const kind = scope.querySelector("[data-probe-kind]");
      const params = scope.querySelector("textarea.params-json");
      const comparator = scope.querySelector("select[name$=comparator]");
      if (!kind || !params) return;
      kind.addEventListener("change", function () {
        params.value = kind.value ? JSON.stringify(defaults[kind.value] || {}, null, 1) : "";
        if (comparator && comparators[kind.value]) comparator.value = comparators[kind.value];
      });
    }

    const rows = container.querySelectorAll("[data-probe-row]");
    if (!rows.length) { wire(container); return; }
    rows.forEach(wire);

    const template = container.querySelector("#probe-row-template");
    const add = container.querySelector(".add-probe");
    const total = container.querySelector("input[name$=-TOTAL_FORMS]");
    const max = container.querySelector("input[name$=-MAX_NUM_FORMS]");
    if (!template || !add || !total) return;
    add.addEventListener("click", function () {
      const index = Number(total.value);
      if (max && index >= Number(max.value)) { add.disabled = true; return; }
      const html = template.innerHTML.replace(/__prefix__/g, String(index)).replace(/__number__/g, String(index + 1));
      const holder = document.createElement("div");
      holder.innerHTML = html;
      const row = holder.firstElementChild;
      add.before(row);
      total.value = String(index + 1);
      wire(row);
      container.dispatchEvent(new Event("probe-row-added", { bubbles: true }));
      if (max && index + 1 >= Number(max.value)) add.disabled = true;
    });
  }

  const probeForm = document.getElementById("probe-form");
  if (probeForm) attach(probeForm);
  const rows = document.getElementById("probe-rows");
  if (rows) attach(rows);
})();
