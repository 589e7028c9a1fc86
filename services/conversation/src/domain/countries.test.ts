import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ZodError } from "zod";
import { catalog, countries, shop } from "../testing/fixtures.ts";
import { catalogProblems, parseCatalog } from "./catalog.ts";
import { countryName, matchCountry, normalizePostcode, parseCountries, validPostcode } from "./countries.ts";

const country = (code: string) => {
  const found = countries[code];
  assert.ok(found, code);
  return found;
};

describe("countries", () => {
  test("the shipped file covers the countries shops may ship to, each example fitting its own shape", () => {
    for (const code of ["ES", "PT", "FR", "DE", "IT", "IE", "NL", "BE", "GB", "US", "MX", "AR", "CO", "CL"]) {
      const c = country(code);
      assert.ok(c.name.en && c.name.es, code);
      assert.equal(validPostcode(c, c.example), c.example, code);
    }
    assert.deepEqual(catalogProblems(catalog, countries), []);
  });

  // Right shapes as shoppers type them, and what they become; then wrong ones.
  const cases: [string, [string, string][], string[]][] = [
    [
      "ES",
      [
        ["28013", "28013"],
        [" 08001 ", "08001"],
      ],
      ["2801", "280130", "60000", "ABCDE"],
    ],
    [
      "PT",
      [
        ["1100-148", "1100-148"],
        ["1100148", "1100-148"],
        ["1100 148", "1100-148"],
      ],
      ["1100", "11001480"],
    ],
    ["FR", [["75001", "75001"]], ["7500", "750011"]],
    ["DE", [["10117", "10117"]], ["1011"]],
    ["IT", [["00184", "00184"]], ["184"]],
    [
      "IE",
      [
        ["D02 X285", "D02 X285"],
        ["d02x285", "D02 X285"],
        ["D6W 1234", "D6W 1234"],
      ],
      ["D02", "B02 X285"],
    ],
    [
      "NL",
      [
        ["1012 JS", "1012 JS"],
        ["1012js", "1012 JS"],
        ["1012  js", "1012 JS"],
      ],
      ["0123 AB", "1012 J5", "1012"],
    ],
    ["BE", [["1000", "1000"]], ["0999", "10000"]],
    [
      "GB",
      [
        ["SW1A 1AA", "SW1A 1AA"],
        ["sw1a1aa", "SW1A 1AA"],
        ["M1 1AE", "M1 1AE"],
        ["b338th", "B33 8TH"],
        ["EC1A 1BB", "EC1A 1BB"],
        ["DN55 1PT", "DN55 1PT"],
      ],
      ["SW1A", "12345", "QA1 1AA", "SW1A 1CA"],
    ],
    [
      "US",
      [
        ["10001", "10001"],
        ["94105-1804", "94105-1804"],
      ],
      ["9410", "94105-18", "941051804"],
    ],
    ["MX", [["06600", "06600"]], ["6600"]],
    [
      "AR",
      [
        ["1425", "1425"],
        ["c1425dka", "C1425DKA"],
      ],
      ["14250", "C1425DK", "I1425DKA"],
    ],
    ["CO", [["110111", "110111"]], ["11011"]],
    ["CL", [["8320000", "8320000"]], ["832000"]],
  ];
  for (const [code, right, wrong] of cases) {
    test(`${code}: postcodes normalised, and checked against the country's shape`, () => {
      const c = country(code);
      for (const [typed, written] of right) assert.equal(validPostcode(c, typed), written, typed);
      for (const typed of wrong) assert.equal(validPostcode(c, typed), undefined, typed);
    });
  }

  test("normalising: upper case and single spaces; a separator put back only where the country has one", () => {
    assert.equal(normalizePostcode({}, "  ab   12 "), "AB 12");
    assert.equal(normalizePostcode({ separator: " ", beforeLast: 3 }, "sw1a-1aa"), "SW1A 1AA");
    assert.equal(normalizePostcode({ separator: " ", beforeLast: 3 }, "1a"), "1A");
  });

  test("names in the shopper's language, and matched in any, by code, name or alias", () => {
    assert.equal(countryName(countries, "NL", "es"), "Países Bajos");
    assert.equal(countryName(countries, "NL", "fr"), "Netherlands");
    assert.equal(countryName(countries, "XX", "en"), "XX");
    const shipsTo = shop.delivery.countries;
    assert.equal(matchCountry(countries, shipsTo, "Alemania"), "DE");
    assert.equal(matchCountry(countries, shipsTo, "deutschland!"), "DE");
    assert.equal(matchCountry(countries, shipsTo, "gb"), "GB");
    assert.equal(matchCountry(countries, shipsTo, "México"), undefined, "not shipped to");
    assert.equal(matchCountry(countries, Object.keys(countries), "Mexico"), "MX");
    assert.equal(matchCountry(countries, shipsTo, ""), undefined);
  });

  test("a bad file fails at load: a pattern that does not compile, is not anchored, or an example off its shape", () => {
    const valid = { name: { en: "Spain" }, postcode: "^\\d{5}$", example: "28013" };
    assert.ok(parseCountries({ ES: valid }).ES);
    for (const bad of [
      { ES: { ...valid, postcode: "^(\\d{5}$" } },
      { ES: { ...valid, postcode: "\\d{5}" } },
      { ES: { ...valid, example: "2801" } },
      { ES: { ...valid, separator: " " } },
      { ES: { ...valid, name: { en: "A country name longer than a list row" } } },
      { Spain: valid },
    ])
      assert.throws(() => parseCountries(bad), ZodError, JSON.stringify(bad));
  });
});

describe("the catalog's delivery", () => {
  const raw = (delivery: unknown, extra: Record<string, unknown> = {}) => ({
    shops: [{ ...shop, delivery, ...extra }],
  });
  const point = (id: string) => ({ id, name: { en: id }, address: "Somewhere 1" });

  test("countries and pickup points are checked; a fulfilment URL is kept", () => {
    assert.ok(parseCatalog(raw({ countries: ["ES"] })));
    const kept = parseCatalog(
      raw({ countries: ["ES"] }, { fulfilment: { url: "https://shop.example/orders" } }),
    );
    assert.deepEqual(kept.shops[0]?.fulfilment, { url: "https://shop.example/orders" });
    for (const bad of [
      raw({ countries: [] }),
      raw({ countries: ["es"] }),
      raw({ countries: ["ES", "ES"] }),
      raw({ countries: ["ES"], pickup: [] }),
      raw({ countries: ["ES"], pickup: Array.from({ length: 11 }, (_, i) => point(`p${i}`)) }),
      raw({ countries: ["ES"], pickup: [point("a"), point("a")] }),
      raw({ countries: ["ES"], pickup: [{ ...point("a"), name: { es: "Solo en español" } }] }),
      raw({ countries: ["ES"] }, { fulfilment: { url: "ftp://shop.example/orders" } }),
      { shops: [{ ...shop, delivery: undefined }] },
    ])
      assert.throws(() => parseCatalog(bad), ZodError);
  });

  test("every country a shop ships to must be in the countries file, named in the shop's language", () => {
    const unknown = parseCatalog(raw({ countries: ["ES", "ZZ"] }));
    assert.deepEqual(catalogProblems(unknown, countries), [
      "shop demo-shop ships to ZZ, which the countries file lacks",
    ]);
    const spanishOnly = parseCountries({
      ES: { name: { es: "España" }, postcode: "^\\d{5}$", example: "28013" },
    });
    assert.deepEqual(catalogProblems(parseCatalog(raw({ countries: ["ES"] })), spanishOnly), [
      "country ES has no en name for shop demo-shop",
    ]);
  });
});
