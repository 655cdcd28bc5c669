/* ketascreen: small progressive enhancements. Everything works without this script.
 * - shows follow-up questions as soon as an answer opens them (same enable_when as the server)
 * - shows crisis and emergency resources the moment an answer calls for them
 * - "none of these" clears the other choices, and the other way round
 * - copy-link and print buttons, review form decision field
 */
(function () {
  "use strict";

  function formAnswers(form) {
    var known = {};
    try { known = JSON.parse(form.getAttribute("data-answers") || "{}"); } catch (e) { known = {}; }
    return known;
  }

  function itemContainer(form, id) { return form.querySelector('[data-item="' + id + '"]'); }

  function currentValues(form, id, known, depth) {
    var box = itemContainer(form, id);
    if (!box) { return known[id] || []; }
    if (box.hidden) { return []; }
    var values = [];
    box.querySelectorAll('input[name="' + id + '"], textarea[name="' + id + '"], select[name="' + id + '"]').forEach(function (el) {
      if (el.type === "hidden") { return; }
      if (el.type === "radio" || el.type === "checkbox") { if (el.checked) { values.push(el.value); } }
      else if (el.value.trim() !== "") { values.push(el.value.trim()); }
    });
    return values;
  }

  function holds(form, spec, known) {
    if (!spec || !spec.when || !spec.when.length) { return true; }
    var results = spec.when.map(function (c) {
      var values = currentValues(form, c.item, known, 0);
      if (c.op === "exists") { return (values.length > 0) === Boolean(c.answer); }
      if (!values.length) { return false; }
      if (c.op === "=") { return values.some(function (v) { return String(v) === String(c.answer); }); }
      if (c.op === "!=") { return !values.some(function (v) { return String(v) === String(c.answer); }); }
      return values.some(function (v) {
        var n = parseFloat(v), t = parseFloat(c.answer);
        if (isNaN(n) || isNaN(t)) { return false; }
        return (c.op === ">" && n > t) || (c.op === ">=" && n >= t) || (c.op === "<" && n < t) || (c.op === "<=" && n <= t);
      });
    });
    return spec.behavior === "any" ? results.some(Boolean) : results.every(Boolean);
  }

  function setEnabled(box, on) {
    box.hidden = !on;
    box.querySelectorAll("input, select, textarea").forEach(function (el) { el.disabled = !on; });
  }

  function refresh(form) {
    var known = formAnswers(form);
    // Items are in order, and conditions only look back, so one pass settles every item.
    form.querySelectorAll("[data-enable]").forEach(function (box) {
      var spec = JSON.parse(box.getAttribute("data-enable"));
      var on = holds(form, spec, known);
      if (on !== !box.hidden) { setEnabled(box, on); }
    });
    form.querySelectorAll("[data-alert]").forEach(function (box) {
      var spec = JSON.parse(box.getAttribute("data-when") || "{}");
      var on = holds(form, spec, known);
      var id = box.getAttribute("data-alert");
      var ack = form.querySelector('input[name="_ack"][value="' + id + '"]');
      if (on && box.hidden) {
        box.hidden = false;
        if (!ack) {
          ack = document.createElement("input");
          ack.type = "hidden"; ack.name = "_ack"; ack.value = id;
          form.appendChild(ack);
        }
      } else if (!on && !box.hidden) {
        box.hidden = true;
        if (ack) { ack.remove(); }
      }
    });
  }

  function exclusive(form, input) {
    if (input.type !== "checkbox" || !input.checked) { return; }
    var group = form.querySelectorAll('input[type="checkbox"][name="' + input.name + '"]');
    var isExclusive = input.getAttribute("data-exclusive") === "true";
    group.forEach(function (other) {
      if (other === input) { return; }
      if (isExclusive || other.getAttribute("data-exclusive") === "true") { other.checked = false; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.questions").forEach(function (form) {
      refresh(form);
      form.addEventListener("change", function (event) {
        if (event.target && event.target.name) { exclusive(form, event.target); }
        refresh(form);
      });
      form.addEventListener("input", function () { refresh(form); });
      var focus = form.getAttribute("data-focus");
      if (focus) {
        var el = document.getElementById(focus);
        var field = el && el.querySelector("input:not([type=hidden]), textarea, select");
        if (field) { field.focus(); }
      }
    });
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy"));
        if (target && navigator.clipboard) {
          navigator.clipboard.writeText(target.textContent.trim()).then(function () { button.textContent = "Link copied"; });
        }
      });
    });
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { window.print(); });
    });
    var decision = document.querySelector("[data-show-when]");
    if (decision) {
      var radio = document.getElementById(decision.getAttribute("data-show-when"));
      var update = function () { decision.hidden = !(radio && radio.checked); };
      document.querySelectorAll('input[name="outcome"]').forEach(function (r) { r.addEventListener("change", update); });
      update();
    }
  });
}());
