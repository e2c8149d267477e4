/**
 * A small builder for ONNX graphs over the generated protobuf types (`gen/onnx_pb.ts`): inputs, outputs,
 * initializers and nodes by name, then a `ModelProto`. Every node's single output is named after the node, so
 * that a value in the graph reads as the module and op that made it (`encoder.layer.0.attention.self/Softmax`).
 */
import { create } from '@bufbuild/protobuf';
import { endianness } from 'node:os';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './gen/onnx_pb.ts';

export { TensorProto_DataType as DataType };

/** A dimension: a fixed size, or a name for a size given at run time (`batch_size`). */
export type Dim = number | string;

/** An attribute value with its ONNX type spelled out (a JavaScript number does not say int or float). */
export type Attribute = { int: number } | { ints: number[] };

export const int = (value: number): Attribute => ({ int: value });
export const ints = (value: number[]): Attribute => ({ ints: value });

/** Initializer data: float32 weights, int64 shapes and indices. */
export type TensorData = Float32Array | BigInt64Array;

function attributeProto(name: string, value: Attribute): AttributeProto {
  if ('int' in value) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(value.int) });
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: value.ints.map(BigInt) });
}

function valueInfo(name: string, elemType: TensorProto_DataType, dims: Dim[]): ValueInfoProto {
  const dim = dims.map((d) =>
    create(TensorShapeProto_DimensionSchema, {
      value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
    }),
  );
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: { case: 'tensorType', value: create(TypeProto_TensorSchema, { elemType, shape: create(TensorShapeProtoSchema, { dim }) }) },
    }),
  });
}

/** The tensor's bytes as ONNX stores them (`raw_data`: little-endian, row-major), without a copy. */
export function rawBytes(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

if (endianness() !== 'LE') throw new Error('@kotune/onnx writes raw little-endian tensors and needs a little-endian machine');

export interface Initializer {
  name: string;
  data: TensorData;
  dims: number[];
}

export class GraphBuilder {
  readonly initializers: Initializer[] = [];
  private readonly nodes: NodeProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly names = new Set<string>();

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX graph: the name "${name}" is used twice`);
    this.names.add(name);
    return name;
  }

  input(name: string, elemType: TensorProto_DataType, dims: Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), elemType, dims));
    return name;
  }

  /** Declares `value` (already computed by a node) as a graph output. */
  output(value: string, elemType: TensorProto_DataType, dims: Dim[]): void {
    this.outputs.push(valueInfo(value, elemType, dims));
  }

  initializer(name: string, data: TensorData, dims: number[]): string {
    const size = dims.reduce((a, b) => a * b, 1);
    if (size !== data.length) throw new Error(`ONNX graph: initializer "${name}" has ${data.length} values for dims [${dims}]`);
    this.initializers.push({ name: this.claim(name), data, dims });
    return name;
  }

  /** A float32 constant (a scalar when `dims` is empty). */
  floats(name: string, values: number[], dims: number[] = []): string {
    return this.initializer(name, Float32Array.from(values), dims);
  }

  /** An int64 constant (shapes, axes, indices). */
  int64s(name: string, values: number[], dims: number[] = [values.length]): string {
    return this.initializer(name, BigInt64Array.from(values.map(BigInt)), dims);
  }

  /** Adds the node `name` and returns its output, which bears the node's name (or `outputName`). */
  node(opType: string, name: string, inputs: string[], attributes: Record<string, Attribute> = {}, outputName = name): string {
    this.claim(name);
    if (outputName !== name) this.claim(outputName);
    this.nodes.push(
      create(NodeProtoSchema, {
        name,
        opType,
        input: inputs,
        output: [outputName],
        attribute: Object.entries(attributes).map(([key, value]) => attributeProto(key, value)),
      }),
    );
    return outputName;
  }

  /**
   * The model. `tensor(initializer)` makes each initializer's TensorProto: inline bytes, or a reference to
   * external data.
   */
  model(options: {
    graphName: string;
    opset: number;
    irVersion: number;
    producerVersion: string;
    docString: string;
    tensor: (initializer: Initializer) => TensorProto;
  }): ModelProto {
    return create(ModelProtoSchema, {
      irVersion: BigInt(options.irVersion),
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(options.opset) })],
      producerName: 'kotune',
      producerVersion: options.producerVersion,
      docString: options.docString,
      graph: create(GraphProtoSchema, {
        name: options.graphName,
        node: this.nodes,
        initializer: this.initializers.map(options.tensor),
        input: this.inputs,
        output: this.outputs,
      }),
    });
  }
}

export function dataTypeOf(data: TensorData): TensorProto_DataType {
  return data instanceof Float32Array ? TensorProto_DataType.FLOAT : TensorProto_DataType.INT64;
}

/** An initializer with its bytes inside the model file. */
export function inlineTensor({ name, data, dims }: Initializer): TensorProto {
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: dataTypeOf(data), rawData: rawBytes(data) });
}
