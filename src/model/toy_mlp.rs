//! A small MLP denoiser for 2-D points: a sinusoidal time embedding, then 3–4 layers of SiLU
//! units, predicting ε. Points are "images" of shape [2, 1, 1], so every scheduler works on it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

use super::Denoiser;
use crate::diffusion::scheduler::PredictionType;
use crate::error::{DiffError, Result};

/// Width of the sinusoidal time embedding.
pub const TIME_DIM: usize = 32;

/// The MLP's shape.
#[derive(Config, Debug)]
pub struct ToyMlpConfig {
    /// Units per hidden layer.
    #[config(default = 128)]
    pub hidden: usize,
    /// Hidden layers after the first (2 gives 3 hidden layers in all).
    #[config(default = 2)]
    pub extra_layers: usize,
}

/// The denoiser: ε̂(x_t, t).
#[derive(Module, Debug)]
pub struct ToyMlp {
    input: Linear,
    time: Linear,
    hidden: Vec<Linear>,
    output: Linear,
}

impl ToyMlpConfig {
    /// A freshly initialised model on `device`.
    pub fn init(&self, device: &Device) -> ToyMlp {
        ToyMlp {
            input: LinearConfig::new(2, self.hidden).init(device),
            time: LinearConfig::new(TIME_DIM, self.hidden).init(device),
            hidden: (0..self.extra_layers)
                .map(|_| LinearConfig::new(self.hidden, self.hidden).init(device))
                .collect(),
            output: LinearConfig::new(self.hidden, 2).init(device),
        }
    }
}

/// Sinusoidal embeddings of the timesteps, [B, TIME_DIM].
pub fn time_embedding(timesteps: &[usize], device: &Device) -> Tensor<2> {
    super::sinusoidal_embedding(timesteps, TIME_DIM, device)
}

impl ToyMlp {
    /// ε̂ for points x [B, 2] at timesteps t.
    pub fn forward(&self, x: Tensor<2>, timesteps: &[usize]) -> Tensor<2> {
        let emb = time_embedding(timesteps, &x.device());
        let mut h = silu(self.input.forward(x) + self.time.forward(emb));
        for layer in &self.hidden {
            h = silu(layer.forward(h));
        }
        self.output.forward(h)
    }
}

impl Denoiser for ToyMlp {
    fn items_independent(&self) -> bool {
        true
    }

    fn prediction_type(&self) -> PredictionType {
        PredictionType::Epsilon
    }

    fn sample_shape(&self) -> [usize; 3] {
        [2, 1, 1]
    }

    fn forward(&self, x_t: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>> {
        let [b, c, h, w] = x_t.dims();
        if [c, h, w] != [2, 1, 1] || timesteps.len() != b {
            return Err(DiffError::invalid(format!(
                "the 2-D model takes [B, 2, 1, 1] points, not {:?}",
                [b, c, h, w]
            )));
        }
        Ok(ToyMlp::forward(self, x_t.reshape([b, 2]), timesteps).reshape([b, 2, 1, 1]))
    }

    fn name(&self) -> String {
        format!("MLP denoiser ({} hidden layers)", self.hidden.len() + 1)
    }
}
