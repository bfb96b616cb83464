/**
 * Moves keyboard focus to an element when it appears: an error summary after a refused form, a
 * freshly shown token. Screen readers then read it, and keyboard users continue from there.
 * Pages wrap such blocks in `{#key form}`, so that each new action result mounts them again and
 * moves focus again, even when the block was already showing.
 */
export function focusOnMount(node: HTMLElement) {
  if (!node.hasAttribute("tabindex")) node.setAttribute("tabindex", "-1");
  node.focus();
}
