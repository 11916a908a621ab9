/** The protocol switch (gRPC-web or Connect), shown on the sign-in form and in the header. */
import { h } from "./dom.ts";
import { type Settings, type TransportKind, transports } from "./settings.ts";

/** A labelled select that calls `onChange` with the settings for the chosen protocol. */
export function transportSelect(settings: Settings, onChange: (next: Settings) => void): HTMLElement {
  const select = h(
    "select",
    {
      name: "transport",
      value: settings.transport,
      onchange: () => onChange({ ...settings, transport: select.value as TransportKind }),
    },
    ...transports.map((t) => h("option", { value: t.kind }, t.label)),
  );
  return h("label", { class: "inline" }, "Protocol ", select);
}
