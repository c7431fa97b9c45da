//! TFLite's enum values (schema.fbs keeps them as plain integers, see there): tensor types, operators,
//! padding and fused activations, with names for error messages.

/// TensorType.
pub const FLOAT32: i8 = 0;
pub const INT32: i8 = 2;
pub const UINT8: i8 = 3;
pub const INT8: i8 = 9;

/// BuiltinOperator, for the operators mnq-gpu reads and writes.
pub const ADD: i32 = 0;
pub const AVERAGE_POOL_2D: i32 = 1;
pub const CONV_2D: i32 = 3;
pub const DEPTHWISE_CONV_2D: i32 = 4;
pub const MEAN: i32 = 40;
pub const QUANTIZE: i32 = 114;
pub const RESHAPE: i32 = 22;
pub const SOFTMAX: i32 = 25;

/// Padding.
pub const SAME: i8 = 0;
pub const VALID: i8 = 1;

/// ActivationFunctionType.
pub const NONE: i8 = 0;
pub const RELU: i8 = 1;
pub const RELU6: i8 = 3;

/// The name of TensorType `code`.
pub fn tensor_type_name(code: i8) -> String {
    let name = match code {
        0 => "FLOAT32",
        1 => "FLOAT16",
        2 => "INT32",
        3 => "UINT8",
        4 => "INT64",
        5 => "STRING",
        6 => "BOOL",
        7 => "INT16",
        8 => "COMPLEX64",
        9 => "INT8",
        10 => "FLOAT64",
        15 => "UINT32",
        16 => "UINT16",
        17 => "INT4",
        18 => "BFLOAT16",
        _ => return format!("tensor type {code}"),
    };
    name.to_string()
}

/// The name of BuiltinOperator `code`, for the common ones; others are named by their number.
pub fn operator_name(code: i32) -> String {
    let name = match code {
        0 => "ADD",
        1 => "AVERAGE_POOL_2D",
        2 => "CONCATENATION",
        3 => "CONV_2D",
        4 => "DEPTHWISE_CONV_2D",
        6 => "DEQUANTIZE",
        9 => "FULLY_CONNECTED",
        14 => "LOGISTIC",
        17 => "MAX_POOL_2D",
        18 => "MUL",
        19 => "RELU",
        21 => "RELU6",
        22 => "RESHAPE",
        25 => "SOFTMAX",
        28 => "TANH",
        32 => "CUSTOM",
        34 => "PAD",
        40 => "MEAN",
        41 => "SUB",
        43 => "SQUEEZE",
        114 => "QUANTIZE",
        117 => "HARD_SWISH",
        _ => return format!("builtin operator {code}"),
    };
    name.to_string()
}

/// The name of ActivationFunctionType `code`.
pub fn activation_name(code: i8) -> String {
    let name = match code {
        0 => "NONE",
        1 => "RELU",
        2 => "RELU_N1_TO_1",
        3 => "RELU6",
        4 => "TANH",
        5 => "SIGN_BIT",
        _ => return format!("activation {code}"),
    };
    name.to_string()
}
