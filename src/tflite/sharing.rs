//! A flatbuffer refers to its tables, vectors and strings by offset, so one file can point a thousand times at
//! the same megabyte. Converting such a file into owned tables copies that megabyte a thousand times: a 550 KB
//! file of 50,000 buffers that all point at one 350 KB vector asks for 17 GB. A file written the ordinary way
//! stores almost everything once (writers such as planus share equal strings and byte vectors, which saves
//! little), so what the conversion copies fits in the file's own bytes. [`check`] counts that, on the zero-copy
//! readers, before anything is copied, and allows twice the file.

use super::schema_generated::tflite as fb;
use planus::Vector;

/// Why the count stopped.
enum Stop {
    /// What the tables refer to adds up to more than the budget.
    OverFile,
    Malformed(planus::Error),
}

impl From<planus::Error> for Stop {
    fn from(error: planus::Error) -> Self {
        Stop::Malformed(error)
    }
}

/// The bytes left to count.
struct Budget(usize);

impl Budget {
    fn take(&mut self, bytes: usize) -> Result<(), Stop> {
        self.0 = self.0.checked_sub(bytes).ok_or(Stop::OverFile)?;
        Ok(())
    }

    /// A vector of scalars: its length word and its elements.
    fn scalars<T>(&mut self, vector: Option<Vector<'_, T>>, element_bytes: usize) -> Result<(), Stop> {
        vector.map_or(Ok(()), |v| self.take(4 + v.len().saturating_mul(element_bytes)))
    }

    fn string(&mut self, string: Option<&str>) -> Result<(), Stop> {
        string.map_or(Ok(()), |s| self.take(4 + s.len()))
    }

    /// A vector of tables: its length word, an offset and at least a vtable offset per table, and what `each`
    /// counts inside each. Stops at the first table over the budget, so a vector of a million references to one
    /// large table costs no more time than the file's length.
    fn tables<'a, T: planus::VectorReadInner<'a, Error = planus::Error> + 'a>(
        &mut self,
        vector: Option<Vector<'a, planus::Result<T>>>,
        mut each: impl FnMut(&mut Self, T) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        let Some(vector) = vector else { return Ok(()) };
        self.take(4)?;
        for table in vector.iter() {
            self.take(8)?;
            each(self, table?)?;
        }
        Ok(())
    }
}

/// Whether converting `model` into owned tables copies no more than twice the file's `file_len` bytes; an
/// error says why not (shared data, or a malformed table met on the way).
pub(super) fn check(model: fb::ModelRef<'_>, file_len: usize) -> Result<(), String> {
    match count(model, &mut Budget(file_len.saturating_mul(2))) {
        Ok(()) => Ok(()),
        Err(Stop::OverFile) => Err(format!(
            "its tables refer to more than twice the file's {file_len} bytes: they point at shared data over and \
             over, which reading the file would copy once per reference"
        )),
        Err(Stop::Malformed(error)) => Err(format!("malformed TFLite flatbuffer: {error}")),
    }
}

/// Every vector and string of `schema.fbs` that the owned conversion copies.
fn count(model: fb::ModelRef<'_>, budget: &mut Budget) -> Result<(), Stop> {
    budget.tables(model.operator_codes()?, |b, code| b.string(code.custom_code()?))?;
    budget.tables(model.subgraphs()?, |b, graph| {
        b.tables(graph.tensors()?, |b, tensor| {
            b.scalars(tensor.shape()?, 4)?;
            b.string(tensor.name()?)?;
            if let Some(q) = tensor.quantization()? {
                b.take(8)?;
                b.scalars(q.min()?, 4)?;
                b.scalars(q.max()?, 4)?;
                b.scalars(q.scale()?, 4)?;
                b.scalars(q.zero_point()?, 8)?;
            }
            Ok(())
        })?;
        b.scalars(graph.inputs()?, 4)?;
        b.scalars(graph.outputs()?, 4)?;
        b.tables(graph.operators()?, |b, operator| {
            b.scalars(operator.inputs()?, 4)?;
            b.scalars(operator.outputs()?, 4)?;
            if let Some(options) = operator.builtin_options()? {
                b.take(8)?;
                // Of the options tables in schema.fbs, only RESHAPE's holds a vector.
                if let fb::BuiltinOptionsRef::ReshapeOptions(reshape) = options {
                    b.scalars(reshape.new_shape()?, 4)?;
                }
            }
            Ok(())
        })?;
        b.string(graph.name()?)
    })?;
    budget.string(model.description()?)?;
    budget.tables(model.buffers()?, |b, buffer| b.take(buffer.data()?.map_or(0, |data| 4 + data.len())))?;
    budget.scalars(model.metadata_buffer()?, 4)?;
    budget.tables(model.metadata()?, |b, entry| b.string(entry.name()?))
}
