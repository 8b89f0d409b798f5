//! `average_safetensors`: a model soup is the element-wise mean of its nets, and only nets of
//! one shape and one training schedule average.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use difflab::diffusion::{PredictionType, ScheduleConfig};
use difflab::model::UNetConfig;
use difflab::model::unet::{
    TrainingRecord, average_safetensors, load_safetensors, read_config, read_training_record,
};
use difflab::tensor_util::to_vec;

fn tiny() -> UNetConfig {
    crate::common::tiny_unet().with_num_classes(Some(3))
}

fn record(steps_trained: usize, prediction: PredictionType) -> TrainingRecord {
    TrainingRecord {
        schedule: ScheduleConfig::default(),
        prediction,
        num_classes: Some(3),
        label_dropout: 0.5,
        ema_decay: 0.999,
        steps_trained,
        batch: 8,
        lr: 1e-3,
        final_loss: Some(0.02),
        min_snr_gamma: None,
        balance_classes: true,
        averaged_from: Vec::new(),
    }
}

/// A net of `config` drawn from `seed`, as SafeTensors bytes with `record`.
fn file(config: &UNetConfig, seed: u64, record: &TrainingRecord) -> Vec<u8> {
    let net = config.init_seeded(&Device::flex(), seed).unwrap();
    net.safetensors_bytes(config, Some(record)).unwrap()
}

/// Every float parameter of a net, in visiting order, as one list.
struct Values(Vec<f32>);

impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.extend(to_vec(t.reshape([n])).unwrap());
    }
}

fn values(bytes: &[u8]) -> Vec<f32> {
    let (net, _) = load_safetensors(bytes, "mem", &Device::flex()).unwrap();
    let mut v = Values(Vec::new());
    net.visit(&mut v);
    v.0
}

#[test]
fn a_soup_holds_the_mean_of_every_weight_and_says_what_it_averages() {
    let config = tiny();
    let v = PredictionType::VPrediction;
    let (a, b, c) = (
        file(&config, 1, &record(700, v)),
        file(&config, 2, &record(900, v)),
        file(&config, 3, &record(800, v)),
    );
    let soup = average_safetensors(&[
        (&a, "runs/a.safetensors"),
        (&b, "b.safetensors"),
        (&c, "c.safetensors"),
    ])
    .unwrap();
    let (va, vb, vc, vs) = (values(&a), values(&b), values(&c), values(&soup));
    assert_eq!(vs.len(), va.len());
    assert!(vs.len() > 1000, "{} weights", vs.len());
    for i in 0..vs.len() {
        let mean = (va[i] + vb[i] + vc[i]) / 3.0;
        assert!(
            (vs[i] - mean).abs() < 1e-6,
            "weight {i}: {} vs {mean}",
            vs[i]
        );
    }
    // Not a copy of any one of them.
    assert!(vs.iter().zip(&va).any(|(s, a)| (s - a).abs() > 1e-3));
    assert_eq!(read_config(&soup, "soup").unwrap(), config);
    let r = read_training_record(&soup, "soup").unwrap().unwrap();
    assert_eq!(r.steps_trained, 900);
    assert_eq!(r.final_loss, None);
    assert_eq!(r.prediction, v);
    assert_eq!(
        r.averaged_from,
        vec!["a.safetensors", "b.safetensors", "c.safetensors"]
    );
}

#[test]
fn nets_of_another_shape_or_training_do_not_average() {
    let config = tiny();
    let eps = PredictionType::Epsilon;
    let a = file(&config, 1, &record(10, eps));
    let wide = UNetConfig {
        base_channels: 16,
        ..tiny()
    };
    let b = file(&wide, 2, &record(10, eps));
    let e = average_safetensors(&[(&a, "a"), (&b, "b")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("b is a different U-Net from a") && e.contains("base_channels 16 against 8"),
        "{e}"
    );
    let v = file(&config, 2, &record(10, PredictionType::VPrediction));
    let e = average_safetensors(&[(&a, "a"), (&v, "v")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("v predicts") && e.contains("cannot be averaged"),
        "{e}"
    );
    let cosine = TrainingRecord {
        schedule: ScheduleConfig {
            num_train_timesteps: 500,
            ..ScheduleConfig::default()
        },
        ..record(10, eps)
    };
    let s = file(&config, 2, &cosine);
    let e = average_safetensors(&[(&a, "a"), (&s, "s")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("s was trained on the schedule"), "{e}");
    let e = average_safetensors(&[(&a, "a")]).unwrap_err().to_string();
    assert!(e.contains("at least two"), "{e}");
}
