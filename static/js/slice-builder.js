// Slice builder: rows of feature / operator / value, features offered from the chosen
// dataset's schema. The rows are written as JSON into the form's `slice` field, which stays
// usable (as plain JSON) when scripts are off.
(function () {
  "use strict";
  const form = document.querySelector("[data-columns-url]");
  if (!form) return;
  const builder = document.getElementById("slice-builder");
  const rowsBox = builder.querySelector(".rows");
  const sliceField = form.querySelector("textarea.slice-json");
  const datasetSelect = form.querySelector("[data-slice-dataset]");
  const OPS = {
    numeric: ["<", "<=", ">", ">=", "==", "!=", "between", "in", "not_in", "is_null", "not_null"],
    categorical: ["==", "!=", "in", "not_in", "is_null", "not_null"],
    boolean: ["==", "!=", "is_null", "not_null"],
    datetime: ["<", "<=", ">", ">=", "between", "is_null", "not_null"],
  };
  let columns = [];

  function parseValue(kind, op, text) {
    if (op === "is_null" || op === "not_null") return undefined;
    const one = (t) => {
      t = t.trim();
      if (kind === "numeric" && t !== "" && !isNaN(Number(t))) return Number(t);
      if (kind === "boolean") return t.toLowerCase() === "true";
      return t;
    };
    if (op === "between" || op === "in" || op === "not_in") return text.split(",").map(one);
    return one(text);
  }

  function formatValue(value) {
    if (value === undefined || value === null) return "";
    return Array.isArray(value) ? value.join(", ") : String(value);
  }

  function write() {
    const preds = [];
    rowsBox.querySelectorAll(".slice-row").forEach((row) => {
      const feature = row.querySelector(".feature").value;
      const op = row.querySelector(".op").value;
      if (!feature) return;
      const col = columns.find((c) => c.name === feature) || { kind: "categorical" };
      const pred = { feature: feature, op: op };
      const value = parseValue(col.kind, op, row.querySelector(".value").value);
      if (value !== undefined) pred.value = value;
      preds.push(pred);
    });
    sliceField.value = preds.length ? JSON.stringify(preds) : "";
  }

  function fillOps(select, kind, current) {
    select.innerHTML = "";
    (OPS[kind] || OPS.categorical).forEach((op) => {
      const o = document.createElement("option");
      o.value = op; o.textContent = op; if (op === current) o.selected = true;
      select.appendChild(o);
    });
  }

  function addRow(pred) {
    const row = document.createElement("div");
    row.className = "slice-row";
    const feature = document.createElement("select");
    feature.className = "feature"; feature.setAttribute("aria-label", "Feature");
    const blank = document.createElement("option"); blank.value = ""; blank.textContent = "feature…";
    feature.appendChild(blank);
    columns.forEach((c) => {
      const o = document.createElement("option");
      o.value = c.name; o.textContent = c.name + " (" + c.kind + ")";
      if (pred && pred.feature === c.name) o.selected = true;
      feature.appendChild(o);
    });
    const op = document.createElement("select");
    op.className = "op"; op.setAttribute("aria-label", "Operator");
    const value = document.createElement("input");
    value.type = "text"; value.className = "value"; value.setAttribute("aria-label", "Value");
    value.placeholder = "value (lists: a, b)";
    value.value = pred ? formatValue(pred.value) : "";
    const remove = document.createElement("button");
    remove.type = "button"; remove.textContent = "×"; remove.setAttribute("aria-label", "Remove condition");
    const kindOf = () => (columns.find((c) => c.name === feature.value) || {}).kind;
    fillOps(op, kindOf(), pred && pred.op);
    feature.addEventListener("change", () => { fillOps(op, kindOf()); write(); });
    op.addEventListener("change", write);
    value.addEventListener("input", write);
    remove.addEventListener("click", () => { row.remove(); write(); });
    row.append(feature, op, value, remove);
    rowsBox.appendChild(row);
  }

  function load(datasetId) {
    if (!datasetId) { builder.hidden = true; return; }
    // getAttribute, not form.dataset: the form's own "dataset" field shadows that property.
    const url = form.getAttribute("data-columns-url").replace("/0/", "/" + encodeURIComponent(datasetId) + "/");
    fetch(url, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((data) => {
        columns = data.columns.filter((c) => c.name !== data.target_column);
        let existing = [];
        try { existing = sliceField.value ? JSON.parse(sliceField.value) : []; } catch (e) { existing = []; }
        rowsBox.innerHTML = "";
        existing.forEach(addRow);
        if (!existing.length) addRow();
        builder.hidden = false;
      });
  }

  builder.querySelector(".add-row").addEventListener("click", () => addRow());
  if (datasetSelect) {
    datasetSelect.addEventListener("change", () => { sliceField.value = ""; load(datasetSelect.value); });
    load(datasetSelect.value);
  }
})();
