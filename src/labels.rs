//! ImageNet class names and labelled image lists.
