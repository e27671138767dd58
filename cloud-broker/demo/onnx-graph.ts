import onnxProto from 'onnx-proto';

/**
 * A tiny ONNX graph builder over onnx-proto (protobufjs), so that models (the demo's and the
 * tests' fixtures) are generated in TypeScript with weights we choose, never downloaded.
 * Opset 13 and IR version 7 are read by both onnxruntime-node 1.30 and OpenCV 4.6's ONNX importer.
 */
const { onnx } = onnxProto;
type INode = onnxProto.onnx.INodeProto;
type ITensor = onnxProto.onnx.ITensorProto;
type IValueInfo = onnxProto.onnx.IValueInfoProto;
type IAttr = onnxProto.onnx.IAttributeProto;

const T = onnx.TensorProto.DataType;
const A = onnx.AttributeProto.AttributeType;

/** Plain integers become INT/INTS; use {float} for a float attribute whose value is whole. */
export type AttrValue = number | number[] | string | { int: number } | { ints: number[] } | { float: number };

export class GraphBuilder {
  private readonly nodes: INode[] = [];
  private readonly inits: ITensor[] = [];
  private readonly inputs: IValueInfo[] = [];
  private readonly outputs: IValueInfo[] = [];
  private counter = 0;

  /** A string dimension is symbolic (dim_param), e.g. "N" for a dynamic batch. */
  input(name: string, dims: (number | string)[], elemType: number = T.FLOAT): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, dims: (number | string)[], elemType: number = T.FLOAT): void {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /** A float32 initializer. */
  floats(dims: number[], values: ArrayLike<number>, name = this.fresh('w')): string {
    if (values.length !== dims.reduce((a, b) => a * b, 1))
      throw new Error(`initializer ${name}: ${values.length} values for dims ${dims}`);
    this.inits.push({ name, dims, dataType: T.FLOAT, rawData: new Uint8Array(Float32Array.from(values).buffer) });
    return name;
  }

  /** An int64 initializer (shapes, axes, indices). */
  int64s(dims: number[], values: number[], name = this.fresh('i')): string {
    this.inits.push({
      name,
      dims,
      dataType: T.INT64,
      rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer),
    });
    return name;
  }

  /** Adds a node; returns the name of its (first) output. Integers go in as INT/INTS, others FLOAT. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, nOutputs = 1): string {
    const outs = Array.from({ length: nOutputs }, () => this.fresh(opType.toLowerCase()));
    this.nodes.push({
      opType,
      input: inputs,
      output: outs,
      name: this.fresh('n'),
      attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)),
    });
    return outs[0]!;
  }

  /** Renames the last node's output so that it becomes a graph output. */
  rename(from: string, to: string): string {
    for (const n of this.nodes) {
      n.output = n.output!.map((o) => (o === from ? to : o));
      n.input = n.input!.map((i) => (i === from ? to : i));
    }
    return to;
  }

  toBytes(graphName: string): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 7,
      producerName: 'outpost',
      opsetImport: [{ domain: '', version: 13 }],
      graph: { name: graphName, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  private fresh(prefix: string): string {
    this.counter += 1;
    return `${prefix}_${this.counter}`;
  }
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): IValueInfo {
  const dim = dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

function attr(name: string, v: AttrValue): IAttr {
  if (typeof v === 'string') return { name, type: A.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'object' && !Array.isArray(v)) {
    if ('float' in v) return { name, type: A.FLOAT, f: v.float };
    return 'int' in v ? { name, type: A.INT, i: v.int } : { name, type: A.INTS, ints: v.ints };
  }
  if (Array.isArray(v))
    return v.every(Number.isInteger) ? { name, type: A.INTS, ints: v } : { name, type: A.FLOATS, floats: v };
  return Number.isInteger(v) ? { name, type: A.INT, i: v } : { name, type: A.FLOAT, f: v };
}

export const ELEM = { FLOAT: T.FLOAT, INT64: T.INT64, UINT8: T.UINT8 } as const;
