//! A small digit classifier for judging generated digits (`difflab eval`): a CNN
//! (3×3 convs 1 → 16 at 28 px, 16 → 32 stride 2 to 14 px, 32 → 32 stride 2 to 7 px, then
//! 1568 → 64 → 10, SiLU throughout). Its 64 penultimate activations are the features of the
//! Fréchet distance, as Inception's are for FID.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, Tensor};

use super::unet::conv3;

/// The classifier's shape.
#[derive(Config, Debug)]
pub struct DigitClassifierConfig {
    /// Image side in pixels (one channel).
    #[config(default = 28)]
    pub image_size: usize,
    /// Channels of the three convs.
    #[config(default = "[16, 32, 32]")]
    pub channels: [usize; 3],
    /// The feature layer.
    #[config(default = 64)]
    pub features: usize,
    /// Classes.
    #[config(default = 10)]
    pub classes: usize,
}

/// The classifier.
#[derive(Module, Debug)]
pub struct DigitClassifier {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    feat: Linear,
    out: Linear,
    image_size: usize,
}

impl DigitClassifierConfig {
    /// A freshly initialised classifier on `device`.
    pub fn init(&self, device: &Device) -> DigitClassifier {
        let [c1, c2, c3] = self.channels;
        // Two stride-2 convs (padding 1): side s → ⌈s/2⌉ → ⌈⌈s/2⌉/2⌉.
        let side = self.image_size.div_ceil(2).div_ceil(2);
        DigitClassifier {
            conv1: conv3(1, c1, 1, device),
            conv2: conv3(c1, c2, 2, device),
            conv3: conv3(c2, c3, 2, device),
            feat: LinearConfig::new(c3 * side * side, self.features).init(device),
            out: LinearConfig::new(self.features, self.classes).init(device),
            image_size: self.image_size,
        }
    }
}

impl DigitClassifier {
    /// The feature layer for flat images [B, side²] in [−1, 1].
    pub fn features(&self, x: Tensor<2>) -> Tensor<2> {
        let [b, _] = x.dims();
        let s = self.image_size;
        let h = x.reshape([b, 1, s, s]);
        let h = silu(difflab_kernels::conv2d_module(&self.conv1, h));
        let h = silu(difflab_kernels::conv2d_module(&self.conv2, h));
        let h = silu(difflab_kernels::conv2d_module(&self.conv3, h));
        let h: Tensor<2> = h.flatten(1, 3);
        silu(self.feat.forward(h))
    }

    /// Logits [B, 10].
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.out.forward(self.features(x))
    }

    /// Class probabilities [B, 10].
    pub fn probabilities(&self, x: Tensor<2>) -> Tensor<2> {
        softmax(self.forward(x), 1)
    }
}
