import type { SwitchyardClient } from "@switchyard/client";

declare global {
  /**
   * `wrangler types` (src/worker-configuration.d.ts) types the service bindings as the Workers
   * runtime's `Fetcher`; the app is typed with the DOM's Request and Response, so it sees a
   * binding as what it uses of one.
   */
  interface Fetcher {
    fetch(request: Request): Promise<Response>;
  }

  namespace App {
    interface Locals {
      /** switchyard as the signed-in user (their session id as the bearer), or anonymous. */
      switchyard: SwitchyardClient;
      signedIn: boolean;
    }
    interface Error {
      message: string;
      /** The switchyard error code, when switchyard refused the request. */
      code?: string;
    }
    interface Platform {
      /** The bindings of wrangler.jsonc, typed by `npm run types` (wrangler types); absent under vite. */
      env?: Env;
    }
  }
}

export {};
