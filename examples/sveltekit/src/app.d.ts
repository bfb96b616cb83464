import type { SwitchyardClient } from "@switchyard/client";

declare global {
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
      env?: {
        /** The service binding to the switchyard Worker (wrangler.toml). */
        SWITCHYARD?: { fetch(request: Request): Promise<Response> };
      };
    }
  }
}

export {};
