"""Write a QatMobileNetV1 (qat.py) as a uint8 TFLite flatbuffer, structured as Google's quantized MobileNetV1 files
(../shared/models/tflite/mobilenet_v1_0.75_192_quant.tflite): one subgraph; CONV_2D, 13 x (DEPTHWISE_CONV_2D,
CONV_2D) with fused RELU6 and SAME padding; AVERAGE_POOL_2D over the whole image (VALID), the classifier CONV_2D
(no activation), RESHAPE to [1, classes], SOFTMAX (output scale 1/256, zero point 0). uint8 per-tensor weights and
activations, int32 biases at scale s_in*s_w; input uint8 pixels, scale 1/128, zero point 128.

Every parameter is the training graph's: the weight codes and bias integers are computed exactly as
QatConv.quantized computes them, and each activation's scale and zero point from the tracked range. Classes: the
model's 1,000 (no background class), which mnq-gpu infers from the count.
"""

import flatbuffers
import numpy as np
import torch
import tflite

import qat

UINT8, INT32 = tflite.TensorType.UINT8, tflite.TensorType.INT32


class Graph:
    def __init__(self):
        self.b = flatbuffers.Builder(1 << 22)
        self.buffers = [None]  # buffer 0: empty, by convention
        self.tensors = []  # (name, shape, type, buffer, quantization (scales, zero points) or None)
        self.operators = []  # (opcode index, inputs, outputs, options type, options builder)
        self.opcodes = []  # builtin codes

    def tensor(self, name, shape, type_, data=None, quant=None):
        buffer = 0
        if data is not None:
            self.buffers.append(np.ascontiguousarray(data).tobytes())
            buffer = len(self.buffers) - 1
        self.tensors.append((name, list(shape), type_, buffer, quant))
        return len(self.tensors) - 1

    def operator(self, code, inputs, output, options_type, options):
        if code not in self.opcodes:
            self.opcodes.append(code)
        self.operators.append((self.opcodes.index(code), inputs, [output], options_type, options))

    def _vector(self, start, values, kind):
        b = self.b
        start(b, len(values))
        for v in reversed(values):
            getattr(b, f"Prepend{kind}")(v)
        return b.EndVector()

    def finish(self, inputs, outputs, description):
        b = self.b
        buffer_offsets = []
        for data in self.buffers:
            data_vec = b.CreateNumpyVector(np.frombuffer(data, np.uint8)) if data else None
            tflite.BufferStart(b)
            if data_vec is not None:
                tflite.BufferAddData(b, data_vec)
            buffer_offsets.append(tflite.BufferEnd(b))
        tensor_offsets = []
        for name, shape, type_, buffer, quant in self.tensors:
            name_off = b.CreateString(name)
            shape_off = b.CreateNumpyVector(np.array(shape, np.int32))
            quant_off = None
            if quant is not None:
                scale_off = b.CreateNumpyVector(np.array(quant[0], np.float32))
                zero_off = b.CreateNumpyVector(np.array(quant[1], np.int64))
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, scale_off)
                tflite.QuantizationParametersAddZeroPoint(b, zero_off)
                quant_off = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape_off)
            tflite.TensorAddType(b, type_)
            tflite.TensorAddBuffer(b, buffer)
            tflite.TensorAddName(b, name_off)
            if quant_off is not None:
                tflite.TensorAddQuantization(b, quant_off)
            tensor_offsets.append(tflite.TensorEnd(b))
        operator_offsets = []
        for opcode, op_inputs, op_outputs, options_type, options in self.operators:
            in_off = b.CreateNumpyVector(np.array(op_inputs, np.int32))
            out_off = b.CreateNumpyVector(np.array(op_outputs, np.int32))
            options_off = options(b)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, opcode)
            tflite.OperatorAddInputs(b, in_off)
            tflite.OperatorAddOutputs(b, out_off)
            tflite.OperatorAddBuiltinOptionsType(b, options_type)
            tflite.OperatorAddBuiltinOptions(b, options_off)
            operator_offsets.append(tflite.OperatorEnd(b))
        tensors_vec = self._vector(tflite.SubGraphStartTensorsVector, tensor_offsets, "UOffsetTRelative")
        operators_vec = self._vector(tflite.SubGraphStartOperatorsVector, operator_offsets, "UOffsetTRelative")
        in_vec = b.CreateNumpyVector(np.array(inputs, np.int32))
        out_vec = b.CreateNumpyVector(np.array(outputs, np.int32))
        name_off = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_vec)
        tflite.SubGraphAddInputs(b, in_vec)
        tflite.SubGraphAddOutputs(b, out_vec)
        tflite.SubGraphAddOperators(b, operators_vec)
        tflite.SubGraphAddName(b, name_off)
        subgraph = tflite.SubGraphEnd(b)
        code_offsets = []
        for code in self.opcodes:
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, code)
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, 1)
            code_offsets.append(tflite.OperatorCodeEnd(b))
        codes_vec = self._vector(tflite.ModelStartOperatorCodesVector, code_offsets, "UOffsetTRelative")
        subgraphs_vec = self._vector(tflite.ModelStartSubgraphsVector, [subgraph], "UOffsetTRelative")
        buffers_vec = self._vector(tflite.ModelStartBuffersVector, buffer_offsets, "UOffsetTRelative")
        description_off = b.CreateString(description)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, codes_vec)
        tflite.ModelAddSubgraphs(b, subgraphs_vec)
        tflite.ModelAddDescription(b, description_off)
        tflite.ModelAddBuffers(b, buffers_vec)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def conv_options(depthwise, stride, activation):
    def build(b):
        if depthwise:
            tflite.DepthwiseConv2DOptionsStart(b)
            tflite.DepthwiseConv2DOptionsAddPadding(b, tflite.Padding.SAME)
            tflite.DepthwiseConv2DOptionsAddStrideW(b, stride)
            tflite.DepthwiseConv2DOptionsAddStrideH(b, stride)
            tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
            tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, activation)
            tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, 1)
            tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, 1)
            return tflite.DepthwiseConv2DOptionsEnd(b)
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, tflite.Padding.SAME)
        tflite.Conv2DOptionsAddStrideW(b, stride)
        tflite.Conv2DOptionsAddStrideH(b, stride)
        tflite.Conv2DOptionsAddFusedActivationFunction(b, activation)
        tflite.Conv2DOptionsAddDilationWFactor(b, 1)
        tflite.Conv2DOptionsAddDilationHFactor(b, 1)
        return tflite.Conv2DOptionsEnd(b)
    return build


@torch.no_grad()
def write(model, path, input_size=None):
    """Write `model` (a QatMobileNetV1 whose ranges are set) as a uint8 TFLite file at `path`."""
    size = input_size or model.input_size
    g = Graph()
    h = w = size
    x = g.tensor("input", [1, h, w, 3], UINT8, quant=([qat.INPUT_SCALE], [qat.INPUT_ZERO_POINT]))
    scale = qat.INPUT_SCALE
    for layer in list(model.convs) + [model.classifier]:
        if layer.kind == "classifier":
            # The pool over the whole image: output keeps its input's parameters.
            params = model.convs[-1].output_params()
            c = layer.weight.shape[1]
            pooled = g.tensor("pool/output", [1, 1, 1, c], UINT8, quant=([params[0]], [params[1]]))
            kernel = [h, w]

            def pool_options(b, kernel=kernel):
                tflite.Pool2DOptionsStart(b)
                tflite.Pool2DOptionsAddPadding(b, tflite.Padding.VALID)
                tflite.Pool2DOptionsAddStrideW(b, 2)
                tflite.Pool2DOptionsAddStrideH(b, 2)
                tflite.Pool2DOptionsAddFilterWidth(b, kernel[1])
                tflite.Pool2DOptionsAddFilterHeight(b, kernel[0])
                tflite.Pool2DOptionsAddFusedActivationFunction(b, tflite.ActivationFunctionType.NONE)
                return tflite.Pool2DOptionsEnd(b)
            g.operator(tflite.BuiltinOperator.AVERAGE_POOL_2D, [x], pooled, tflite.BuiltinOptions.Pool2DOptions,
                       pool_options)
            x, h, w = pooled, 1, 1
        w_q, b_q, (w_scale, w_zero, bias_scale) = layer.quantized(scale)
        weight_codes = qat.to_codes(w_q, w_scale, w_zero).clamp(0, 255).to(torch.uint8)
        bias_codes = torch.round(b_q / bias_scale).to(torch.int32)
        if layer.kind == "depthwise":
            kernel = weight_codes.permute(1, 2, 3, 0)  # [C, 1, 3, 3] -> [1, 3, 3, C]
        else:
            kernel = weight_codes.permute(0, 2, 3, 1)  # [O, I, kh, kw] -> [O, kh, kw, I]
        c_out = layer.weight.shape[0]
        weights = g.tensor(f"{layer.name}/weights", list(kernel.shape), UINT8, kernel.numpy(),
                           quant=([w_scale], [w_zero]))
        bias = g.tensor(f"{layer.name}/bias", [c_out], INT32, bias_codes.numpy().astype("<i4"),
                        quant=([bias_scale], [0]))
        h, w = -(-h // layer.stride), -(-w // layer.stride)
        out_scale, out_zero = layer.output_params()
        out = g.tensor(f"{layer.name}/output", [1, h, w, c_out], UINT8, quant=([out_scale], [out_zero]))
        depthwise = layer.kind == "depthwise"
        activation = tflite.ActivationFunctionType.RELU6 if layer.relu6 else tflite.ActivationFunctionType.NONE
        g.operator(tflite.BuiltinOperator.DEPTHWISE_CONV_2D if depthwise else tflite.BuiltinOperator.CONV_2D,
                   [x, weights, bias], out,
                   tflite.BuiltinOptions.DepthwiseConv2DOptions if depthwise else tflite.BuiltinOptions.Conv2DOptions,
                   conv_options(depthwise, layer.stride, activation))
        x, scale = out, out_scale
    classes = model.classifier.weight.shape[0]
    logit_params = model.classifier.output_params()
    new_shape = g.tensor("reshape/shape", [2], INT32, np.array([1, classes], "<i4"))
    reshaped = g.tensor("logits", [1, classes], UINT8, quant=([logit_params[0]], [logit_params[1]]))

    def reshape_options(b):
        shape_vec = b.CreateNumpyVector(np.array([1, classes], np.int32))
        tflite.ReshapeOptionsStart(b)
        tflite.ReshapeOptionsAddNewShape(b, shape_vec)
        return tflite.ReshapeOptionsEnd(b)
    g.operator(tflite.BuiltinOperator.RESHAPE, [x, new_shape], reshaped, tflite.BuiltinOptions.ReshapeOptions,
               reshape_options)
    probabilities = g.tensor("probabilities", [1, classes], UINT8, quant=([1 / 256], [0]))

    def softmax_options(b):
        tflite.SoftmaxOptionsStart(b)
        tflite.SoftmaxOptionsAddBeta(b, 1.0)
        return tflite.SoftmaxOptionsEnd(b)
    g.operator(tflite.BuiltinOperator.SOFTMAX, [reshaped], probabilities, tflite.BuiltinOptions.SoftmaxOptions,
               softmax_options)
    data = g.finish([0], [probabilities], "MobileNetV1 0.75 quantization-aware fine-tuned (mnq-gpu finetune/, TF8)")
    with open(path, "wb") as f:
        f.write(data)
