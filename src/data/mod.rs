//! Data: the bundled MNIST digits, and reading and writing images.

pub mod gif;
pub mod image_io;
pub mod mnist;
pub mod tensor_file;
pub mod toy2d;
