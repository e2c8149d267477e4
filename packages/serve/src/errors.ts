/**
 * Errors as text-embeddings-inference (TEI) answers them: `{"error": message, "error_type": kind}`, the kinds of
 * TEI's `ErrorType` under their Rust names (router/src/lib.rs, serialised by serde as written: "Validation",
 * "Empty", ...). The OpenAI-compatible route answers TEI's `OpenAICompatErrorResponse`, `{"message", "code",
 * "type"}`. Status codes follow TEI's `From<&ErrorType> for StatusCode` (router/src/http/server.rs), except where
 * issue 18 asks otherwise: an over-full queue is 503 with Retry-After (TEI: 429 "Model is overloaded"), and a
 * request over the batch-size limit is 413 (TEI's OpenAPI "Batch size error"; TEI ≤ 1.8 answered 413 for every
 * validation error, 1.9 answers 422).
 */

export type ErrorType = 'Unhealthy' | 'Backend' | 'Overloaded' | 'Validation' | 'Tokenizer' | 'Empty' | 'Unauthorized' | 'NotFound';

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly errorType: ErrorType,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** TEI's `TextEmbeddingsError` texts: validation and empty-input errors are prefixed "Input validation error: ". */
export const inputValidation = (message: string, statusCode = 422) =>
  new ApiError(statusCode, 'Validation', `Input validation error: ${message}`);
export const inputEmpty = () => new ApiError(400, 'Empty', 'Input validation error: `inputs` cannot be empty');
/** A request-level empty list (TEI's handlers: "`texts` cannot be empty", "`inputs` cannot be empty"). */
export const emptyList = (field: string) => new ApiError(400, 'Empty', `\`${field}\` cannot be empty`);
export const batchTooLarge = (size: number, limit: number) =>
  new ApiError(413, 'Validation', `batch size ${size} > maximum allowed batch size ${limit}`);
export const overloaded = (retryAfterSeconds: number) =>
  new ApiError(503, 'Overloaded', 'Model is overloaded', { 'retry-after': String(retryAfterSeconds) });
/** TEI answers 424 when a route does not fit the model ("model is not a re-ranker model") or inference fails. */
export const backend = (message: string) => new ApiError(424, 'Backend', message);

export interface TeiErrorBody {
  error: string;
  error_type: ErrorType;
}

export interface OpenAiErrorBody {
  message: string;
  code: number;
  type: ErrorType;
}

export function teiErrorBody(error: ApiError): TeiErrorBody {
  return { error: error.message, error_type: error.errorType };
}

export function openAiErrorBody(error: ApiError): OpenAiErrorBody {
  return { message: error.message, code: error.statusCode, type: error.errorType };
}
