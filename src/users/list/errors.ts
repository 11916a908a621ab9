/**
 * The three ways a List/Stream/Watch request can be malformed. Each is a ServiceError with its contract
 * reason, so the errors interceptor turns it into INVALID_ARGUMENT + ErrorInfo with no mapping code in the
 * handlers; the message is written for the caller and never contains SQL.
 */
import { ServiceError } from "../../rpc/errors.ts";

/** A filter outside the contract's AIP-160 subset; `position` is the 0-based offset it points at. */
export class FilterError extends ServiceError {
  /** Offset in the filter string (UTF-16 code units, as JavaScript counts) of the offending token. */
  readonly position: number;
  /** The field the problem concerns, when there is one. */
  readonly field: string | undefined;
  constructor(detail: string, position: number, field?: string) {
    super("INVALID_FILTER", `invalid filter at offset ${position}: ${detail}`);
    this.name = "FilterError";
    this.position = position;
    this.field = field;
  }
}

/** An order_by outside the contract (unknown or repeated field, bad direction, empty item). */
export class OrderByError extends ServiceError {
  constructor(detail: string) {
    super("INVALID_ORDER_BY", `invalid order_by: ${detail}`);
    this.name = "OrderByError";
  }
}

/** A page token that is garbage, was modified, or was made for another filter/order_by/show_deleted. */
export class PageTokenError extends ServiceError {
  constructor(detail: string) {
    super("INVALID_PAGE_TOKEN", `invalid page_token: ${detail}`);
    this.name = "PageTokenError";
  }
}
