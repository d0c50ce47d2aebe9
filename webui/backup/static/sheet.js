// The recovery sheet's Print button (a separate file: the CSP allows no inline script).
const printButton = document.getElementById("print-sheet");
if (printButton) printButton.addEventListener("click", () => window.print());
