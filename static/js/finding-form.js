// Finding form: the version and dataset choices (the finding's and each probe's) offer only
// what belongs to the chosen ML model. Each option says whose it is (data-ml-model on a
// version, data-ml-models on a dataset, written by the server from MLModel.check_owns's
// rule); the server refuses anything else at the field, so this only saves a round trip.
(function () {
  "use strict";
  const form = document.getElementById("finding-form");
  if (!form) return;
  const model = form.querySelector("[data-ml-model-choice]");
  if (!model) return;

  function fits(option, chosen) {
    if (!option.value || !chosen) return true;
    const one = option.getAttribute("data-ml-model");
    if (one !== null) return one === chosen;
    const many = option.getAttribute("data-ml-models");
    if (many !== null) return many.split(" ").indexOf(chosen) >= 0;
    return true;
  }

  function limit(select) {
    const chosen = model.value;
    let lost = false;
    Array.prototype.forEach.call(select.options, (option) => {
      const ok = fits(option, chosen);
      option.hidden = !ok;
      option.disabled = !ok;
      if (!ok && option.selected) lost = true;
    });
    if (lost) {
      select.value = "";
      select.dispatchEvent(new Event("change"));
    }
  }

  function limitAll() {
    form.querySelectorAll("select[name=model_version], select[name=dataset], select[name$=-dataset]").forEach(limit);
  }

  model.addEventListener("change", limitAll);
  form.addEventListener("probe-row-added", limitAll);
  limitAll();
})();
