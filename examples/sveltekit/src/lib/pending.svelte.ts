import type { SubmitFunction } from "@sveltejs/kit";

/**
 * A form's "in flight" state for `use:enhance`: `busy` is true from submit until SvelteKit has
 * applied the result, so the submit button can say so and refuse a second click. As with plain
 * `use:enhance`, a refused form keeps what was typed and an accepted one is cleared.
 */
export class Pending {
  busy = $state(false);

  enhance: SubmitFunction = () => {
    this.busy = true;
    return async ({ update }) => {
      await update();
      this.busy = false;
    };
  };
}
