//! Image decoding and TF-slim evaluation preprocessing.
