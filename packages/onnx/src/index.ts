export { exportOnnx, writeOnnx, modelGraph, modelTask, OPSET, IR_VERSION, MAX_DATA_FILE_BYTES } from './export.ts';
export type { OnnxExportOptions, OnnxExportResult } from './export.ts';
export { buildXLMRobertaGraph, INPUT_NAMES, OUTPUT_NAME } from './xlm-roberta-graph.ts';
export type { Weight, XLMRobertaTask } from './xlm-roberta-graph.ts';
export { GraphBuilder } from './graph-builder.ts';
