"""Keyboard shortcuts of the Rate section, run once in the page: 1/a, 2/b, 3/t, 4/x vote A, B,
tie, both bad; n opens the next comparison. Keys act only while the comparison is on screen
and the focus is not in a text field."""

import json

SHORTCUTS = {"1": "eval-vote-a", "a": "eval-vote-a", "2": "eval-vote-b", "b": "eval-vote-b",
             "3": "eval-vote-tie", "t": "eval-vote-tie", "4": "eval-vote-both-bad",
             "x": "eval-vote-both-bad", "n": "eval-next"}

_SNIPPET = """
() => {
  if (window.codiEvalKeys) return;
  const keys = %s;
  const typing = (el) => el && (el.isContentEditable || el.tagName === "TEXTAREA" ||
    el.tagName === "SELECT" || (el.tagName === "INPUT" &&
      !["radio", "checkbox", "button", "range"].includes(el.type)));
  const shown = (el) => el && el.getClientRects().length > 0;
  window.codiEvalKeys = (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (typing(event.target)) return;
    const id = keys[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (!id || !shown(document.getElementById("eval-rate"))) return;
    const button = document.getElementById(id);
    if (!shown(button) || button.disabled) return;
    event.preventDefault();
    button.click();
  };
  document.addEventListener("keydown", window.codiEvalKeys);
}
"""

#: The snippet for `Blocks.load(js=...)`.
KEYS_JS = _SNIPPET % json.dumps(SHORTCUTS)
