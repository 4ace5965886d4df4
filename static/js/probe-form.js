// Probe form: when the kind changes, show that kind's default parameters and comparator.
(function () {
  "use strict";
  const form = document.getElementById("probe-form");
  if (!form) return;
  // getAttribute, not form.dataset: the form's own "dataset" field shadows that property.
  const defaults = JSON.parse(form.getAttribute("data-defaults") || "{}");
  const comparators = JSON.parse(form.getAttribute("data-comparators") || "{}");
  const kind = form.querySelector("[data-probe-kind]");
  const params = form.querySelector("textarea.params-json");
  const comparator = form.querySelector("select[name=comparator]");
  if (!kind || !params) return;
  kind.addEventListener("change", function () {
    params.value = JSON.stringify(defaults[kind.value] || {}, null, 1);
    if (comparator && comparators[kind.value]) comparator.value = comparators[kind.value];
  });
})();
