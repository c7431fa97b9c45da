//! Every op shader is valid WGSL as composed (shaders/common.wgsl + each inner-product file + the op file), names
//! its entry point after its stem and declares its params struct as `<Stem>Params`; only the Dot4 composition
//! uses `dot4U8Packed`.

use mnq_gpu::gpu::shaders::{self, InnerProduct, Kernel};

fn pascal_case(stem: &str) -> String {
    stem.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |first| first.to_ascii_uppercase().to_string() + chars.as_str())
        })
        .collect()
}

fn validate(what: &str, source: &str) -> naga::Module {
    let module =
        naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(source)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(source)));
    module
}

#[test]
fn every_op_shader_validates_with_naga_after_composition() {
    for inner in InnerProduct::ALL {
        for kernel in Kernel::ALL {
            let stem = kernel.name();
            let what = format!("shaders/{stem}.wgsl with {inner:?}");
            let module = validate(&what, &kernel.source(inner));
            assert!(module.entry_points.iter().any(|e| e.name == stem), "{what}: no entry point `{stem}`");
            let params = format!("{}Params", pascal_case(stem));
            let named = module.types.iter().any(|(_, ty)| ty.name.as_deref() == Some(params.as_str()));
            assert!(named, "{what}: no struct `{params}`");
        }
    }
}

#[test]
fn common_wgsl_validates_with_each_inner_product() {
    for inner in InnerProduct::ALL {
        validate(&format!("shaders/common.wgsl with {inner:?}"), &shaders::compose(inner, ""));
    }
}

/// Pins the fallback for browsers without the packed_4x8_integer_dot_product language feature: a shader that
/// merely names `dot4U8Packed` fails to compile there, even if it never calls it.
#[test]
fn only_the_dot4_composition_names_dot4u8packed() {
    for kernel in Kernel::ALL {
        for inner in InnerProduct::ALL {
            let names = kernel.source(inner).contains("dot4U8Packed(");
            assert_eq!(names, inner == InnerProduct::Dot4, "{kernel:?} with {inner:?}");
        }
    }
}
