// Slice builder: rows of column / operator / value beside a slice text field, kept in sync
// both ways. The server reads and writes slice text (catalog:slice_text, which calls
// boundary.slices.parse / describe), so the page never has a reader of its own. Columns
// come from the chosen dataset; when the dataset changes, conditions on columns it lacks
// are kept and flagged, never dropped. Without scripts the text field works on its own.
(function () {
  "use strict";
  const OPS = {
    numeric: ["<", "<=", ">", ">=", "==", "!=", "between", "in", "not_in", "is_null", "not_null"],
    categorical: ["==", "!=", "in", "not_in", "is_null", "not_null"],
    boolean: ["==", "!=", "is_null", "not_null"],
    datetime: ["<", "<=", ">", ">=", "==", "!=", "between", "is_null", "not_null"],
  };
  const OP_LABELS = { not_in: "not in", is_null: "is null", not_null: "is not null" };
  const NO_VALUE = ["is_null", "not_null"];
  const LISTS = ["between", "in", "not_in"];

  function debounce(fn, ms) {
    let timer = null;
    return function () {
      const args = arguments;
      clearTimeout(timer);
      timer = setTimeout(() => fn.apply(null, args), ms);
    };
  }

  function setup(builder) {
    const text = document.getElementById(builder.getAttribute("data-text"));
    const datasetSelect = document.getElementById(builder.getAttribute("data-dataset"));
    if (!text) return;
    const rowsBox = builder.querySelector(".rows");
    const status = builder.querySelector(".builder-status");
    const addButton = builder.querySelector(".add-row");
    const columnsUrl = builder.getAttribute("data-columns-url");
    const textUrl = builder.getAttribute("data-text-url");
    let columns = null; // null: no dataset chosen yet
    let datasetName = "";
    let asked = 0; // the newest request wins

    function say(message, bad) {
      status.textContent = message;
      status.classList.toggle("error", !!bad);
    }

    function ask(params) {
      const query = new URLSearchParams(params);
      if (datasetSelect && datasetSelect.value) query.set("dataset", datasetSelect.value);
      const ticket = ++asked;
      return fetch(textUrl + "?" + query.toString(), { credentials: "same-origin" })
        .then((r) => r.json())
        .then((answer) => (ticket === asked ? answer : null));
    }

    function kindOf(name) {
      const col = (columns || []).find((c) => c.name === name);
      return col ? col.kind : null;
    }

    function typed(kind, raw) {
      const t = raw.trim();
      if (kind === "numeric" && t !== "" && !isNaN(Number(t))) return Number(t);
      if (kind === "boolean" && /^(true|false)$/i.test(t)) return t.toLowerCase() === "true";
      return t;
    }

    function shown(value) {
      if (value === undefined || value === null) return "";
      return Array.isArray(value) ? value.join(", ") : String(value);
    }

    function predicates() {
      const preds = [];
      rowsBox.querySelectorAll(".slice-row").forEach((row) => {
        const feature = row.querySelector(".feature").value;
        const op = row.querySelector(".op").value;
        if (!feature || !op) return;
        const pred = { feature: feature, op: op };
        if (NO_VALUE.indexOf(op) < 0) {
          const raw = row.querySelector(".value").value;
          const kind = kindOf(feature) || "categorical";
          pred.value = LISTS.indexOf(op) >= 0
            ? raw.split(",").filter((v) => v.trim() !== "").map((v) => typed(kind, v))
            : typed(kind, raw);
        }
        preds.push(pred);
      });
      return preds;
    }

    // Rows -> text: the server writes the predicates as slice text.
    const writeText = debounce(function () {
      const preds = predicates();
      if (!preds.length) { text.value = ""; flag([]); return; }
      ask({ slice: JSON.stringify(preds) }).then((answer) => {
        if (!answer) return;
        if (answer.error) { say(answer.error, true); return; }
        text.value = answer.text;
        text.dispatchEvent(new Event("slice-synced"));
        flag(answer.missing || []);
      });
    }, 150);

    function option(select, value, label, chosen) {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = label;
      if (chosen) o.selected = true;
      select.appendChild(o);
    }

    function fillOps(select, kind, current) {
      select.innerHTML = "";
      (OPS[kind] || OPS.categorical).forEach((op) => option(select, op, OP_LABELS[op] || op, op === current));
      if (current && !select.value) option(select, current, OP_LABELS[current] || current, true);
    }

    function addRow(pred) {
      const row = document.createElement("div");
      row.className = "slice-row";
      const feature = document.createElement("select");
      feature.className = "feature";
      feature.setAttribute("aria-label", "Column");
      option(feature, "", "column…", !pred);
      (columns || []).forEach((c) => option(feature, c.name, c.name + " (" + c.kind + ")", pred && pred.feature === c.name));
      if (pred && !kindOf(pred.feature)) option(feature, pred.feature, pred.feature + " (not in this dataset)", true);
      const op = document.createElement("select");
      op.className = "op";
      op.setAttribute("aria-label", "Operator");
      const value = document.createElement("input");
      value.type = "text";
      value.className = "value";
      value.setAttribute("aria-label", "Value");
      value.placeholder = "value (a list: a, b)";
      value.value = pred ? shown(pred.value) : "";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove-row";
      remove.textContent = "×";
      remove.setAttribute("aria-label", "Remove condition");
      const note = document.createElement("small");
      note.className = "row-note error";
      fillOps(op, kindOf(feature.value), pred && pred.op);
      const showValue = () => { value.hidden = NO_VALUE.indexOf(op.value) >= 0; };
      showValue();
      feature.addEventListener("change", () => { fillOps(op, kindOf(feature.value), op.value); showValue(); writeText(); });
      op.addEventListener("change", () => { showValue(); writeText(); });
      value.addEventListener("input", writeText);
      remove.addEventListener("click", () => { row.remove(); writeText(); });
      row.append(feature, op, value, remove, note);
      rowsBox.appendChild(row);
    }

    // Conditions on columns the dataset lacks: kept, and flagged on their rows.
    function flag(missing) {
      rowsBox.querySelectorAll(".slice-row").forEach((row) => {
        const name = row.querySelector(".feature").value;
        const lacks = columns !== null && name && missing.indexOf(name) >= 0;
        row.classList.toggle("missing", !!lacks);
        row.querySelector(".row-note").textContent = lacks
          ? "“" + name + "” is not a column of " + datasetName + ": choose another column or remove the condition."
          : "";
      });
      if (columns === null) return;
      if (missing.length) {
        say("Not in " + datasetName + ": " + missing.join(", ") + ". These conditions are kept until you change them.", true);
      } else {
        say("Each row is one condition; all must hold. The text above follows the rows, and the rows follow the text.");
      }
    }

    function render(preds, missing) {
      rowsBox.innerHTML = "";
      preds.forEach(addRow);
      if (!preds.length) addRow();
      flag(missing || []);
    }

    // Text -> rows: the server reads the slice text.
    function readText() {
      const value = text.value.trim();
      if (value.startsWith("[")) {
        // A JSON slice, as older pages sent: shown as text.
        return ask({ slice: value }).then((answer) => {
          if (answer && !answer.error) { text.value = answer.text; render(answer.slice, answer.missing); }
        });
      }
      return ask({ text: value }).then((answer) => {
        if (!answer) return;
        if (answer.error) { say("The slice text cannot be read yet: " + answer.error, true); return; }
        render(answer.slice, answer.missing);
      });
    }

    function loadColumns() {
      const id = datasetSelect ? datasetSelect.value : "";
      if (!id) {
        columns = null;
        rowsBox.innerHTML = "";
        addButton.hidden = true;
        say("Choose a dataset to build the slice from its columns, or type the slice as text above.");
        return Promise.resolve();
      }
      datasetName = datasetSelect.options[datasetSelect.selectedIndex].textContent;
      const url = columnsUrl.replace("/0/", "/" + encodeURIComponent(id) + "/");
      return fetch(url, { credentials: "same-origin" })
        .then((r) => r.json())
        .then((data) => {
          columns = data.columns.filter((c) => c.name !== data.target_column);
          addButton.hidden = false;
          return readText();
        });
    }

    addButton.addEventListener("click", () => addRow());
    text.addEventListener("input", debounce(() => { if (columns !== null) readText(); }, 300));
    if (datasetSelect) datasetSelect.addEventListener("change", loadColumns);
    builder.hidden = false;
    loadColumns();
  }

  document.querySelectorAll("[data-slice-builder]").forEach(setup);
})();
