// Turns one image of a burn tensor [B, C, H, W] (f32, any strides) into an Rgba8Unorm texture.
// WGSL has no u8 type, so a compute pass writes the texture with textureStore instead of a
// buffer-to-texture copy. Values map linearly from [lo, hi] to [0, 1] and are clamped.

struct Params {
    // Element offset of the tensor in the buffer, plus the batch item's offset.
    base: u32,
    // Element strides of the C, H and W axes.
    stride_c: u32,
    stride_h: u32,
    stride_w: u32,
    // 1 (grey, copied to R, G and B) or 3.
    channels: u32,
    width: u32,
    height: u32,
    _pad: u32,
    lo: f32,
    hi: f32,
    _pad2: vec2<f32>,
};

@group(0) @binding(0) var<storage, read> values: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var out_tex: texture_storage_2d<rgba8unorm, write>;

fn channel(c: u32, x: u32, y: u32) -> f32 {
    let cc = select(c, 0u, params.channels == 1u);
    let v = values[params.base + cc * params.stride_c + y * params.stride_h + x * params.stride_w];
    return clamp((v - params.lo) / (params.hi - params.lo), 0.0, 1.0);
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= params.width || id.y >= params.height) {
        return;
    }
    let rgba = vec4<f32>(channel(0u, id.x, id.y), channel(1u, id.x, id.y), channel(2u, id.x, id.y), 1.0);
    textureStore(out_tex, vec2<i32>(i32(id.x), i32(id.y)), rgba);
}
