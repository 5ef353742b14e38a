// Course sheets: keep figures whole when printing.
// Plotly figures are drawn at the screen width; before printing, redraw each at the
// printable width (measured from a 180 mm probe) and restore it afterwards. Hints in
// <details> are opened so that a printed sheet shows them.
(function () {
  var probe = document.createElement("div");
  probe.className = "sheet-print-probe";
  document.body.appendChild(probe);
  var opened = [];
  function plots() { return Array.prototype.slice.call(document.querySelectorAll(".js-plotly-plot")); }
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details:not([open])").forEach(function (d) { d.open = true; opened.push(d); });
    if (!window.Plotly) return;
    var width = probe.getBoundingClientRect().width || 680;
    plots().forEach(function (gd) {
      if (gd.getBoundingClientRect().width > width) {
        gd.dataset.sheetPrintResized = "1";
        window.Plotly.relayout(gd, { width: Math.floor(width) });
      }
    });
  });
  window.addEventListener("afterprint", function () {
    opened.forEach(function (d) { d.open = false; });
    opened = [];
    if (!window.Plotly) return;
    plots().forEach(function (gd) {
      if (gd.dataset.sheetPrintResized) {
        delete gd.dataset.sheetPrintResized;
        window.Plotly.relayout(gd, { width: null, autosize: true });
      }
    });
  });
})();
