//! A sequential multilayer perceptron of [`Dense`] layers and activations.

use ndarray::Array2;
use rand::Rng;

use super::{Activation, Dense, Init, ParamGrad, Params};

/// What a forward pass saved for the backward pass: every layer's input and pre-activation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MlpCache {
    /// `acts[0]` is the network input; `acts[l + 1]` is the output of layer `l`.
    acts: Vec<Array2<f64>>,
    /// `pres[l]` is the pre-activation of layer `l`.
    pres: Vec<Array2<f64>>,
}

impl MlpCache {
    /// The network output of the cached forward pass.
    ///
    /// # Panics
    /// If no forward pass has been cached.
    pub fn output(&self) -> &Array2<f64> {
        self.acts.last().expect("forward pass cached")
    }

    /// The network input of the cached forward pass.
    ///
    /// # Panics
    /// If no forward pass has been cached.
    pub fn input(&self) -> &Array2<f64> {
        self.acts.first().expect("forward pass cached")
    }
}

/// Dense layers with `hidden` after every layer but the last and `output` after the last.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    layers: Vec<Dense>,
    hidden: Activation,
    output: Activation,
    cache: MlpCache,
}

impl Mlp {
    /// A network over `dims = [in, hidden..., out]`, every layer initialized by `init`.
    ///
    /// # Panics
    /// If `dims` has fewer than two entries (a configuration error caught by the checked configs).
    pub fn new(
        dims: &[usize],
        hidden: Activation,
        output: Activation,
        init: Init,
        rng: &mut impl Rng,
    ) -> Self {
        assert!(dims.len() >= 2, "an MLP needs input and output widths");
        let layers = dims
            .windows(2)
            .map(|w| Dense::new(w[0], w[1], init, rng))
            .collect();
        Self::from_layers(layers, hidden, output)
    }

    /// A network from existing layers (e.g. masked ones); consecutive widths must agree.
    ///
    /// # Panics
    /// If `layers` is empty or consecutive widths differ.
    pub fn from_layers(layers: Vec<Dense>, hidden: Activation, output: Activation) -> Self {
        assert!(!layers.is_empty(), "an MLP needs at least one layer");
        for w in layers.windows(2) {
            assert_eq!(
                w[0].fan_out(),
                w[1].fan_in(),
                "consecutive layer widths differ"
            );
        }
        Self {
            layers,
            hidden,
            output,
            cache: MlpCache::default(),
        }
    }

    /// Widths `[in, hidden..., out]`.
    pub fn dims(&self) -> Vec<usize> {
        let mut d = vec![self.layers[0].fan_in()];
        d.extend(self.layers.iter().map(Dense::fan_out));
        d
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// Activation after the hidden layers.
    pub fn hidden_activation(&self) -> Activation {
        self.hidden
    }

    /// Activation after the output layer.
    pub fn output_activation(&self) -> Activation {
        self.output
    }

    fn activation(&self, l: usize) -> Activation {
        if l + 1 == self.layers.len() {
            self.output
        } else {
            self.hidden
        }
    }

    /// Inference without caching.
    pub fn predict(&self, x: &Array2<f64>) -> Array2<f64> {
        let mut h: Option<Array2<f64>> = None;
        for (l, layer) in self.layers.iter().enumerate() {
            let mut next = layer.forward(h.as_ref().unwrap_or(x));
            let act = self.activation(l);
            if act != Activation::Identity {
                next.mapv_inplace(|t| act.apply(t));
            }
            h = Some(next);
        }
        h.expect("at least one layer")
    }

    /// Forward pass saving into `cache` what [`Mlp::input_grad`] / [`Mlp::backward_with`] need.
    /// Returns the output (also `cache.output()`).
    pub fn forward_with<'c>(&self, x: &Array2<f64>, cache: &'c mut MlpCache) -> &'c Array2<f64> {
        cache.acts.clear();
        cache.pres.clear();
        cache.acts.push(x.clone());
        for (l, layer) in self.layers.iter().enumerate() {
            let pre = layer.forward(&cache.acts[l]);
            let post = self.activation(l).forward(&pre);
            cache.pres.push(pre);
            cache.acts.push(post);
        }
        cache.output()
    }

    /// Forward pass with the internal cache, for a following [`Mlp::backward`].
    pub fn forward(&mut self, x: &Array2<f64>) -> Array2<f64> {
        let mut cache = std::mem::take(&mut self.cache);
        let out = self.forward_with(x, &mut cache).clone();
        self.cache = cache;
        out
    }

    /// Backward pass after [`Mlp::forward`]: adds parameter gradients, returns `dL/d(input)`.
    ///
    /// # Panics
    /// If `forward` has not been called.
    pub fn backward(&mut self, grad_out: &Array2<f64>) -> Array2<f64> {
        let cache = std::mem::take(&mut self.cache);
        let g = self.backward_with(&cache, grad_out);
        self.cache = cache;
        g
    }

    /// Backward pass through an explicit cache: adds parameter gradients, returns `dL/d(input)`.
    pub fn backward_with(&mut self, cache: &MlpCache, grad_out: &Array2<f64>) -> Array2<f64> {
        let mut g = grad_out.clone();
        for l in (0..self.layers.len()).rev() {
            let act = self.activation(l);
            act.backward_in_place(&cache.pres[l], &cache.acts[l + 1], &mut g);
            g = self.layers[l].backward(&cache.acts[l], &g);
        }
        g
    }

    /// `dL/d(input)` through a cached forward pass, leaving parameter gradients untouched (for
    /// frozen networks).
    pub fn input_grad(&self, cache: &MlpCache, grad_out: &Array2<f64>) -> Array2<f64> {
        let mut g = grad_out.clone();
        for l in (0..self.layers.len()).rev() {
            let act = self.activation(l);
            act.backward_in_place(&cache.pres[l], &cache.acts[l + 1], &mut g);
            g = self.layers[l].input_grad(&g);
        }
        g
    }

    /// The part of the network that computes the outputs `outputs` (in that order): every
    /// hidden unit with no path of non-zero effective weights to one of them is left out. The
    /// values are the same as those outputs of the whole network, up to the sign of a zero:
    /// what is left out only ever adds exact zeros.
    pub fn restricted_to(&self, outputs: &[usize]) -> Mlp {
        // keep[l]: the units of layer l's output kept, from the last layer back.
        let n = self.layers.len();
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); n];
        rows[n - 1] = outputs.to_vec();
        for l in (1..n).rev() {
            let w = self.layers[l].effective_weight();
            rows[l - 1] = (0..w.ncols())
                .filter(|&h| rows[l].iter().any(|&o| w[[o, h]] != 0.0))
                .collect();
        }
        let layers = (0..n)
            .map(|l| {
                let layer = &self.layers[l];
                let w = layer.effective_weight();
                let cols: Vec<usize> = if l == 0 {
                    (0..w.ncols()).collect()
                } else {
                    rows[l - 1].clone()
                };
                let sub = Array2::from_shape_fn((rows[l].len(), cols.len()), |(r, c)| {
                    w[[rows[l][r], cols[c]]]
                });
                let b = rows[l].iter().map(|&r| layer.bias()[r]).collect();
                Dense::from_parts(sub, b)
            })
            .collect();
        Mlp::from_layers(layers, self.hidden, self.output)
    }

    /// Parameters in the bundle's `MlpWire` layout (per layer: `W_eff` `[out][in]` row-major,
    /// then `b`), masks multiplied in, converted to `f32`.
    pub fn to_wire_params(&self) -> Vec<f32> {
        let mut out = Vec::new();
        for layer in &self.layers {
            out.extend(layer.effective_weight().iter().map(|&v| v as f32));
            out.extend(layer.bias().iter().map(|&v| v as f32));
        }
        out
    }
}

impl Params for Mlp {
    fn params_and_grads(&mut self) -> Vec<ParamGrad<'_>> {
        self.layers
            .iter_mut()
            .flat_map(Dense::params_and_grads)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{
        assert_grads_close, numeric_grad, numeric_param_grad, random_matrix,
    };
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn check(hidden: Activation, output: Activation, dims: &[usize]) {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut mlp = Mlp::new(dims, hidden, output, Init::TorchDefault, &mut rng);
        let x = random_matrix(5, dims[0], 21, 1.5);
        let w_out = random_matrix(5, *dims.last().unwrap(), 22, 1.0);
        let out = mlp.forward(&x);
        assert_eq!(out, mlp.predict(&x));
        mlp.zero_grad();
        let gx = mlp.backward(&w_out);
        let numeric_x = numeric_grad(&x, |x| (mlp.predict(x) * &w_out).sum());
        assert_grads_close(gx.as_slice().unwrap(), numeric_x.as_slice().unwrap());
        let analytic_p = mlp.flat_grads();
        let numeric_p = numeric_param_grad(&mut mlp, |m| (m.predict(&x) * &w_out).sum());
        assert_grads_close(&analytic_p, &numeric_p);

        let mut cache = MlpCache::default();
        mlp.forward_with(&x, &mut cache);
        let gx2 = mlp.input_grad(&cache, &w_out);
        assert_grads_close(gx2.as_slice().unwrap(), numeric_x.as_slice().unwrap());
    }

    #[test]
    fn relu_sigmoid_mlp_backward_matches_finite_differences() {
        check(Activation::Relu, Activation::Sigmoid, &[4, 8, 6, 1]);
    }

    #[test]
    fn elu_identity_mlp_backward_matches_finite_differences() {
        check(Activation::Elu, Activation::Identity, &[3, 7, 6]);
    }

    /// The hidden activations of a brought classifier (scikit-learn's `tanh`, `logistic`,
    /// `identity`), through a whole network: input and parameter gradients.
    #[test]
    fn tanh_sigmoid_identity_hidden_mlps_backward_match_finite_differences() {
        check(Activation::Tanh, Activation::Identity, &[3, 5, 4, 1]);
        check(Activation::Sigmoid, Activation::Identity, &[3, 5, 1]);
        check(Activation::Identity, Activation::Identity, &[3, 4, 1]);
    }

    #[test]
    fn restricted_network_computes_the_same_outputs() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        // Layers whose weights are partly exact zeros, like MADE's masked ones.
        let layers: Vec<Dense> = [(5, 9), (9, 8), (8, 6)]
            .iter()
            .enumerate()
            .map(|(l, &(fan_in, fan_out))| {
                let mask = Array2::from_shape_fn((fan_out, fan_in), |(o, i)| {
                    f64::from(u8::from((o * 3 + i + l) % 4 != 0))
                });
                Dense::masked(mask, Init::TorchDefault, &mut rng)
            })
            .collect();
        let mlp = Mlp::from_layers(layers, Activation::Elu, Activation::Identity);
        let x = random_matrix(7, 5, 3, 2.0);
        let full = mlp.predict(&x);
        for outputs in [vec![0], vec![5, 1], vec![2, 3, 4], (0..6).collect()] {
            let part = mlp.restricted_to(&outputs).predict(&x);
            for (k, &o) in outputs.iter().enumerate() {
                assert_eq!(part.column(k), full.column(o), "output {o}");
            }
        }
    }

    #[test]
    fn input_grad_leaves_param_grads_untouched() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mlp = Mlp::new(
            &[2, 3, 1],
            Activation::Relu,
            Activation::Identity,
            Init::TorchDefault,
            &mut rng,
        );
        let mut frozen = mlp.clone();
        let mut cache = MlpCache::default();
        let x = random_matrix(4, 2, 1, 1.0);
        frozen.forward_with(&x, &mut cache);
        frozen.input_grad(&cache, &random_matrix(4, 1, 2, 1.0));
        assert!(frozen.flat_grads().iter().all(|&g| g == 0.0));
    }

    #[test]
    fn wire_params_follow_mlp_wire_layout() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mlp = Mlp::new(
            &[3, 2, 1],
            Activation::Relu,
            Activation::Sigmoid,
            Init::TorchDefault,
            &mut rng,
        );
        let p = mlp.to_wire_params();
        assert_eq!(p.len(), 3 * 2 + 2 + 2 + 1);
        assert_eq!(p[1], mlp.layers()[0].weight()[[0, 1]] as f32);
        assert_eq!(p[6], mlp.layers()[0].bias()[0] as f32);
        assert_eq!(p[8], mlp.layers()[1].weight()[[0, 0]] as f32);
    }
}
