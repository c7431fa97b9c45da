//! Import of a TF.js layers model directory.
