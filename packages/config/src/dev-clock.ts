import { z } from "zod";
import { refuseOutsideLocal } from "./development-defaults.ts";

/**
 * DEV_CLOCK_URL: where a service reads how far a development clock runs ahead of the real one
 * (`GET` → `{ "offsetMs": n }`, the WhatsApp simulator's /sim/api/clock), so "the shopper comes back
 * three hours later" can be tried in minutes. A clock anyone can move decides who may still be
 * written to and which journeys have expired: refused outside DEPLOYMENT_ENVIRONMENT=local.
 */
export const devClockUrl = () =>
  refuseOutsideLocal(z.string().url().optional(), {
    developmentOnly: true,
    is: "a development clock that anyone who reaches it can move",
    instead: "unset it (services keep the real time)",
  });
