import { readFileSync } from "node:fs";
import { parseCatalogYaml } from "@taituri/conversation-service/catalog";
import type { BusinessNumber } from "./types.ts";

/** Meta's example business number: what a shopper writes to when nothing names another. */
export const META_EXAMPLE_NUMBER: BusinessNumber = {
  phoneNumberId: "106540352242922",
  displayPhoneNumber: "15550783881",
  wabaId: "102290129340398",
};

/**
 * The business numbers shoppers write to, from the conversation's catalog (`file`, its
 * CATALOG_FILE): each number a shop lists, and Meta's example number for a shop that serves any
 * number ("*"). A number's display form is made up from its id, as Meta's test numbers look.
 */
export function catalogNumbers(file: string): BusinessNumber[] {
  const title = (id: string) => id.charAt(0).toUpperCase() + id.slice(1).replace(/[-_]+/g, " ");
  return parseCatalogYaml(readFileSync(file, "utf8")).shops.flatMap((shop) =>
    shop.phoneNumberIds.map((id) =>
      id === "*"
        ? { ...META_EXAMPLE_NUMBER, name: title(shop.id) }
        : {
            phoneNumberId: id,
            displayPhoneNumber: `1555${id.slice(-7).padStart(7, "0")}`,
            wabaId: META_EXAMPLE_NUMBER.wabaId,
            name: title(shop.id),
          },
    ),
  );
}
