/**
 * JSON schemas of the request bodies, checked by fastify (ajv) before a handler runs: a wrong type or a missing
 * field is 422, as TEI's serde deserialisation answers. Field names, types and defaults are TEI's
 * (router/src/http/types.rs: `RerankRequest`, `EmbedRequest`, `OpenAICompatRequest`), Cohere's / Jina's rerank
 * request, and `model` everywhere (to pick one of several served models). Unknown fields are ignored, as serde
 * does by default. A `description` is what a 422 says the field must be.
 */

const nullable = (type: string, extra: Record<string, unknown> = {}) => ({ type: [type, 'null'], ...extra });
const model = nullable('string', { description: 'a string: the name of a served model' });
const truncate = nullable('boolean');
// serde's aliases of TEI's TruncationDirection.
const truncationDirection = { type: 'string', enum: ['Left', 'left', 'Right', 'right'], description: '"left" or "right"' };
const textOrTexts = {
  anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
  description: 'a string or a list of strings',
};
const dimensions = nullable('integer', { minimum: 0, description: 'a non-negative integer' });

/** TEI `POST /rerank`. */
export const teiRerank = {
  type: 'object',
  required: ['query', 'texts'],
  properties: {
    query: { type: 'string' },
    texts: { type: 'array', items: { type: 'string' } },
    truncate,
    truncation_direction: truncationDirection,
    raw_scores: { type: 'boolean', default: false },
    return_text: { type: 'boolean', default: false },
    model,
  },
} as const;

export interface TeiRerankBody {
  query: string;
  texts: string[];
  truncate?: boolean | null;
  truncation_direction?: string;
  raw_scores: boolean;
  return_text: boolean;
  model?: string | null;
}

/** TEI `POST /embed` (string inputs; TEI also takes token ids). */
export const teiEmbed = {
  type: 'object',
  required: ['inputs'],
  properties: {
    inputs: textOrTexts,
    truncate,
    truncation_direction: truncationDirection,
    prompt_name: nullable('string'),
    normalize: { type: 'boolean' },
    dimensions,
    model,
  },
} as const;

export interface TeiEmbedBody {
  inputs: string | string[];
  truncate?: boolean | null;
  truncation_direction?: string;
  prompt_name?: string | null;
  normalize?: boolean;
  dimensions?: number | null;
  model?: string | null;
}

/** OpenAI `POST /v1/embeddings`, as TEI takes it (`OpenAICompatRequest`). */
export const openAiEmbeddings = {
  type: 'object',
  required: ['input'],
  properties: {
    input: textOrTexts,
    model,
    user: nullable('string'),
    encoding_format: { type: 'string', enum: ['float', 'base64'], default: 'float', description: '"float" or "base64"' },
    dimensions,
  },
} as const;

export interface OpenAiEmbeddingsBody {
  input: string | string[];
  model?: string | null;
  encoding_format: 'float' | 'base64';
  dimensions?: number | null;
}

/** Cohere / Jina `POST /v1/rerank`: documents as strings or `{"text": ...}` objects (Cohere v1, Jina). */
export const cohereRerank = {
  type: 'object',
  required: ['query', 'documents'],
  properties: {
    model,
    query: { type: 'string' },
    documents: {
      type: 'array',
      items: {
        anyOf: [{ type: 'string' }, { type: 'object', required: ['text'], properties: { text: { type: 'string' } } }],
        description: 'a string or an object with a string "text"',
      },
    },
    top_n: nullable('integer', { minimum: 1, description: 'a positive integer' }),
    return_documents: { type: 'boolean', default: false },
  },
} as const;

export interface CohereRerankBody {
  model?: string | null;
  query: string;
  documents: (string | { text: string })[];
  top_n?: number | null;
  return_documents: boolean;
}
