/** A modal dialog over the page, with a title and a Close button; removed from the page when closed. */
import { type Child, h } from "./dom.ts";

/** Opens a wide dialog titled `title` holding `body`. */
export function openDialog(title: string, ...body: Child[]): HTMLDialogElement {
  const dialog = h(
    "dialog",
    { class: "card wide", "aria-label": title },
    h("h2", {}, title),
    ...body,
    h("div", { class: "actions" }, h("button", { type: "button", onclick: () => dialog.close() }, "Close")),
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}
