import { OutpostError } from '../../protocol/errors/index.js';
import { MODEL_JSON } from '../../protocol/manifest.js';
import type { ModelParameters } from '../../protocol/manifest-types.js';
import type { Tensor, TensorInfo } from './backend.js';
import { showShape } from './tensors.js';

/**
 * Which tensor an image becomes, read from the model's own declared input rather than assumed.
 *
 * Caffe, PyTorch and most ONNX exports take NCHW float32; TensorFlow and TFLite conversions
 * (BlazeFace, the TF Object Detection API) take NHWC, often uint8. The layout is decided from
 * the input's declared shape: the axis of length 3 next to the batch is the channel axis (NCHW
 * when it is axis 1, NHWC when it is axis 3). When the shape cannot decide (both or neither are
 * 3, or both are dynamic), `input_format` in the model JSON says it ("NCHW" or "NHWC"; the
 * seed's field, which hailo models use for their own values), and without it NCHW is taken and
 * reported as a default, never silently: `source` says how the layout was chosen.
 *
 * Dynamic dimensions are filled from the model JSON: batch 1, height and width from `size`.
 * A static height or width that differs from `size` is the JSON's mistake and is refused, with
 * the fix in the message.
 */
export type InputLayout = 'NCHW' | 'NHWC';

export interface ImageInput {
  name: string;
  layout: InputLayout;
  dtype: 'float32' | 'uint8';
  /** The concrete shape fed to the model. */
  shape: number[];
  /** How the layout was chosen: from the declared shape, from `input_format`, or NCHW by default. */
  source: 'shape' | 'input_format' | 'default';
}

/** `input_format` when it names a layout (case-insensitive); hailo's values ("auto") are not layouts. */
export function declaredInputLayout(params: ModelParameters): InputLayout | undefined {
  const f = typeof params.input_format === 'string' ? params.input_format.trim().toUpperCase() : '';
  return f === 'NCHW' || f === 'NHWC' ? f : undefined;
}

/**
 * The image input of a model, or why it has none (then the model serves raw tensors only). The
 * reason names what the model declares and what would make it an image model.
 */
export function resolveImageInput(
  inputs: readonly TensorInfo[],
  params: ModelParameters,
): ImageInput | { reason: string } {
  if (inputs.length !== 1) {
    return { reason: `the model has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}), not one image` };
  }
  const info = inputs[0]!;
  if (info.dtype !== 'float32' && info.dtype !== 'uint8') {
    return { reason: `input "${info.name}" is ${info.dtype}; an image input is float32 or uint8` };
  }
  if (info.shape.length !== 4) {
    return { reason: `input "${info.name}" has shape ${showShape(info.shape)}; an image input has 4 dimensions` };
  }
  const c1 = info.shape[1],
    c3 = info.shape[3];
  const byShape: InputLayout | undefined = c1 === 3 && c3 !== 3 ? 'NCHW' : c3 === 3 && c1 !== 3 ? 'NHWC' : undefined;
  const declared = declaredInputLayout(params);
  let layout: InputLayout;
  let source: ImageInput['source'];
  if (declared) {
    layout = declared;
    source = 'input_format';
  } else if (byShape) {
    layout = byShape;
    source = 'shape';
  } else {
    layout = 'NCHW';
    source = 'default';
  }
  const channelAxis = layout === 'NCHW' ? 1 : 3;
  const ch = info.shape[channelAxis];
  if (ch !== null && ch !== 3) {
    return {
      reason: `input "${info.name}" has shape ${showShape(info.shape)}: as ${layout} it has ${ch} channels, not 3${
        declared ? ` (input_format says ${declared})` : ''
      }`,
    };
  }
  const [w, h] = params.size;
  const want = layout === 'NCHW' ? [1, 3, h, w] : [1, h, w, 3];
  const fits = want.every((d, i) => info.shape[i] === null || info.shape[i] === d);
  if (!fits) {
    throw new OutpostError(
      'RUNTIME_INPUT_INVALID',
      `size [${w},${h}] in ${MODEL_JSON} does not fit the ${layout} network input ${showShape(info.shape)}; set "size" to [${
        layout === 'NCHW' ? info.shape[3] : info.shape[2]
      },${layout === 'NCHW' ? info.shape[2] : info.shape[1]}]`,
      { size: [w, h], shape: info.shape, layout },
    );
  }
  return { name: info.name, layout, dtype: info.dtype, shape: want, source };
}

/**
 * An NCHW float32 blob (what blobFromImage makes) as the tensor the model takes: transposed to
 * NHWC when the model wants that, and converted to uint8 (rounded, clamped to 0-255) when the
 * model takes bytes. A uint8 model expects raw pixel values, so its JSON keeps mean 0 and
 * scalefactor 1; any other values still apply before the conversion, as the JSON says.
 */
export function toModelInput(blob: Tensor, input: ImageInput): Tensor {
  const src = blob.data as Float32Array;
  const [, c, h, w] = blob.shape as [number, number, number, number];
  const n = src.length;
  const out: Float32Array | Uint8Array = input.dtype === 'uint8' ? new Uint8Array(n) : new Float32Array(n);
  const put =
    input.dtype === 'uint8'
      ? (i: number, v: number) => {
          out[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
        }
      : (i: number, v: number) => {
          out[i] = v;
        };
  if (input.layout === 'NCHW') {
    if (input.dtype === 'float32') return { dtype: 'float32', shape: input.shape, data: src };
    for (let i = 0; i < n; i++) put(i, src[i]!);
  } else {
    const plane = h * w;
    for (let p = 0; p < plane; p++) for (let k = 0; k < c; k++) put(p * c + k, src[k * plane + p]!);
  }
  return { dtype: input.dtype, shape: input.shape, data: out };
}
