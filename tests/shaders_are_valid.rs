//! Every op shader is valid WGSL as composed (shaders/common.wgsl + the op file), names its entry point after
//! its stem and declares its params struct as `<Stem>Params`.

use mnq_gpu::gpu::shaders;

fn pascal_case(stem: &str) -> String {
    stem.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |first| first.to_ascii_uppercase().to_string() + chars.as_str())
        })
        .collect()
}

#[test]
fn every_op_shader_validates_with_naga_after_composition() {
    for stem in shaders::STEMS {
        let source = shaders::source(stem).expect("a stem has a source");
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("shaders/{stem}.wgsl: {}", e.emit_to_string(&source)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("shaders/{stem}.wgsl: {}", e.emit_to_string(&source)));
        assert!(module.entry_points.iter().any(|e| e.name == stem), "shaders/{stem}.wgsl: no entry point `{stem}`");
        let params = format!("{}Params", pascal_case(stem));
        let named = module.types.iter().any(|(_, ty)| ty.name.as_deref() == Some(params.as_str()));
        assert!(named, "shaders/{stem}.wgsl: no struct `{params}`");
    }
}

#[test]
fn common_wgsl_validates_on_its_own() {
    let module = naga::front::wgsl::parse_str(shaders::COMMON)
        .unwrap_or_else(|e| panic!("shaders/common.wgsl: {}", e.emit_to_string(shaders::COMMON)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("shaders/common.wgsl: {}", e.emit_to_string(shaders::COMMON)));
}
