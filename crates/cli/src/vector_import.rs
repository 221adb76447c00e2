//! `sutazai vector import FILE --collection NAME`: streams the points of a file into a collection
//! of the vector service over gRPC, in batches, with a progress bar on stderr.
//!
//! Formats: `.fvecs` (per vector: dimension as i32, then that many f32, little-endian), `.npy`
//! (a 2-D float32 array in C order; the header is parsed here), and `.jsonl` (one
//! `{"id": .., "vector": [..], "payload": {..}}` per line). Rows of fvecs and npy files get their
//! row number (from 0) as a numeric id. The file is read as it is sent, never whole.
//!
//! With `--embed` the file holds documents instead, one `{"id": .., "text": "..", "payload": {..}}`
//! per JSONL line, sent to `UpsertDocuments`: the service embeds each text with its model and
//! stores it in the payload under `text`.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::vector_service_client::VectorServiceClient;
use tonic::transport::Channel;

/// Largest request the importer sends (the service's default `max_message_bytes`).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// How often the progress bar is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(100);
/// Width of the bar in characters.
const BAR_WIDTH: usize = 30;

/// `sutazai vector import` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// A .fvecs, .npy (float32, C order, 2-D) or .jsonl file.
    file: PathBuf,
    /// The collection to upsert into.
    #[arg(long)]
    collection: String,
    /// The vector service's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:10103")]
    url: String,
    /// An access token (a service token with vectors:write, or a user's).
    #[arg(long, env = "SUTAZAI_TOKEN", hide_env_values = true)]
    token: String,
    /// Points per upsert request (default 1000; with --embed, 64 documents, which the service
    /// embeds before it answers).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: Option<u32>,
    /// The file holds documents (`{"id", "text", "payload"?}` per JSONL line) for the service to
    /// embed, not vectors.
    #[arg(long)]
    embed: bool,
    /// Create the collection first, with this dimension (an existing one is used as it is; with
    /// --embed, the embedding model's dimension).
    #[arg(long)]
    create_dimension: Option<u32>,
    /// The metric of a collection created with --create-dimension (default l2; with --embed,
    /// cosine, what sentence embeddings are compared with).
    #[arg(long, value_enum)]
    metric: Option<MetricArg>,
    /// The index of a collection created with --create-dimension.
    #[arg(long, value_enum, default_value = "hnsw")]
    index: IndexArg,
    /// The file's format; by default its extension says.
    #[arg(long, value_enum)]
    format: Option<Format>,
}

/// A collection's metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MetricArg {
    L2,
    Ip,
    Cosine,
}

/// A collection's index, with the service's default parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum IndexArg {
    Flat,
    Ivf,
    Hnsw,
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Fvecs,
    Npy,
    Jsonl,
}

/// Points per request without --batch.
const DEFAULT_POINT_BATCH: u32 = 1000;
/// Documents per request without --batch: each request waits for its embeddings, so smaller
/// batches keep the progress bar moving on a CPU-bound model.
const DEFAULT_DOCUMENT_BATCH: u32 = 64;

/// Runs the import; exit 0 when every point was upserted.
pub(crate) fn run(args: ImportArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sutazai: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(import(&args)) {
        Ok(summary) => {
            let unit = unit(args.embed);
            println!(
                "imported {} {unit} into `{}` in {:.1} s ({:.0} {unit}/s)",
                summary.records,
                args.collection,
                summary.elapsed.as_secs_f64(),
                summary.records as f64 / summary.elapsed.as_secs_f64().max(1e-9)
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sutazai: {error:#}");
            ExitCode::FAILURE
        }
    }
}

struct Summary {
    records: u64,
    elapsed: Duration,
}

/// What the file holds, as the progress bar and the summary count it.
fn unit(embed: bool) -> &'static str {
    if embed { "documents" } else { "points" }
}

async fn import(args: &ImportArgs) -> anyhow::Result<Summary> {
    let format = match args.format {
        Some(format) => format,
        None => format_of(&args.file)?,
    };
    let mut source = if args.embed {
        if format != Format::Jsonl {
            bail!(
                "--embed reads documents from a JSONL file (one {{\"id\", \"text\", \"payload\"}} per line)"
            );
        }
        PointSource::open_documents(&args.file)?
    } else {
        PointSource::open(&args.file, format)?
    };
    let mut client = VectorServiceClient::connect(args.url.clone())
        .await
        .with_context(|| format!("connect to {}", args.url))?
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    if let Some(dimension) = args.create_dimension {
        create_collection(&mut client, args, dimension).await?;
    }
    let started = Instant::now();
    let mut progress = Progress::new(source.total_bytes(), std::io::stderr().is_terminal(), unit(args.embed));
    let mut imported: u64 = 0;
    let default_batch = if args.embed { DEFAULT_DOCUMENT_BATCH } else { DEFAULT_POINT_BATCH };
    let batch_size = usize::try_from(args.batch.unwrap_or(default_batch)).unwrap_or(1000);
    loop {
        let batch = source.next_batch(batch_size)?;
        if batch.is_empty() {
            break;
        }
        let count = batch.len() as u64;
        upsert(&mut client, args, batch, imported).await?;
        imported += count;
        progress.update(source.position_bytes(), imported, started.elapsed());
    }
    progress.finish(source.position_bytes(), imported, started.elapsed());
    Ok(Summary { records: imported, elapsed: started.elapsed() })
}

/// Sends one batch, whose first record is number `first` of the file, with the call its records
/// need.
async fn upsert(
    client: &mut VectorServiceClient<Channel>,
    args: &ImportArgs,
    batch: Batch,
    first: u64,
) -> anyhow::Result<()> {
    let last = first + batch.len() as u64 - 1;
    let collection = args.collection.clone();
    let answer = match batch {
        Batch::Points(points) => {
            let request = authorized(pb::UpsertRequest { collection, points }, &args.token)?;
            client.upsert(request).await.map(drop)
        }
        Batch::Documents(documents) => {
            let request = authorized(pb::UpsertDocumentsRequest { collection, documents }, &args.token)?;
            client.upsert_documents(request).await.map(drop)
        }
    };
    answer.map_err(|status| {
        anyhow::anyhow!(
            "upserting {} {first} to {last}: {} ({:?})",
            unit(args.embed),
            status.message(),
            status.code()
        )
    })
}

async fn create_collection(
    client: &mut VectorServiceClient<Channel>,
    args: &ImportArgs,
    dimension: u32,
) -> anyhow::Result<()> {
    let default_metric = if args.embed { MetricArg::Cosine } else { MetricArg::L2 };
    let metric = match args.metric.unwrap_or(default_metric) {
        MetricArg::L2 => pb::DistanceMetric::L2,
        MetricArg::Ip => pb::DistanceMetric::Ip,
        MetricArg::Cosine => pb::DistanceMetric::Cosine,
    };
    let kind = match args.index {
        IndexArg::Flat => pb::index_config::Kind::Flat(pb::FlatIndexConfig {}),
        IndexArg::Ivf => pb::index_config::Kind::Ivf(pb::IvfIndexConfig::default()),
        IndexArg::Hnsw => pb::index_config::Kind::Hnsw(pb::HnswIndexConfig::default()),
    };
    let request = authorized(
        pb::CreateCollectionRequest {
            name: args.collection.clone(),
            dimension,
            metric: metric.into(),
            index: Some(pb::IndexConfig { kind: Some(kind) }),
        },
        &args.token,
    )?;
    match client.create_collection(request).await {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::AlreadyExists => {
            eprintln!("collection `{}` exists; importing into it", args.collection);
            Ok(())
        }
        Err(status) => {
            bail!("creating collection `{}`: {} ({:?})", args.collection, status.message(), status.code())
        }
    }
}

fn authorized<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    let value =
        format!("Bearer {}", token.trim()).parse().context("the token is not a valid header value")?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

fn format_of(path: &Path) -> anyhow::Result<Format> {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("fvecs") => Ok(Format::Fvecs),
        Some("npy") => Ok(Format::Npy),
        Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
        _ => bail!("cannot tell the format of {} from its extension; pass --format", path.display()),
    }
}

/// One batch read from the file.
enum Batch {
    /// Vectors, upserted as they are.
    Points(Vec<pb::Point>),
    /// Texts, which the service embeds.
    Documents(Vec<pb::Document>),
}

impl Batch {
    fn len(&self) -> usize {
        match self {
            Self::Points(points) => points.len(),
            Self::Documents(documents) => documents.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads points (or documents) from a file, counting the bytes consumed for the progress bar.
struct PointSource {
    reader: CountingReader<BufReader<File>>,
    total_bytes: u64,
    format: SourceFormat,
    row: u64,
}

enum SourceFormat {
    Points(PointFormat),
    Documents { line: u64 },
}

enum PointFormat {
    Fvecs { dimension: Option<usize> },
    Npy { rows: u64, columns: usize, big_endian: bool },
    Jsonl { line: u64 },
}

impl PointSource {
    fn open(path: &Path, format: Format) -> anyhow::Result<Self> {
        let (mut reader, total_bytes) = open_counting(path)?;
        let format = match format {
            Format::Fvecs => PointFormat::Fvecs { dimension: None },
            Format::Jsonl => PointFormat::Jsonl { line: 0 },
            Format::Npy => {
                let header = read_npy_header(&mut reader)
                    .with_context(|| format!("read the npy header of {}", path.display()))?;
                PointFormat::Npy { rows: header.rows, columns: header.columns, big_endian: header.big_endian }
            }
        };
        Ok(Self { reader, total_bytes, format: SourceFormat::Points(format), row: 0 })
    }

    /// A JSONL file of documents.
    fn open_documents(path: &Path) -> anyhow::Result<Self> {
        let (reader, total_bytes) = open_counting(path)?;
        Ok(Self { reader, total_bytes, format: SourceFormat::Documents { line: 0 }, row: 0 })
    }

    fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    fn position_bytes(&self) -> u64 {
        self.reader.bytes
    }

    /// Up to `size` records; empty at the end of the file.
    fn next_batch(&mut self, size: usize) -> anyhow::Result<Batch> {
        match &mut self.format {
            SourceFormat::Points(format) => {
                let (reader, row) = (&mut self.reader, &mut self.row);
                up_to(size, || next_point(reader, format, row)).map(Batch::Points)
            }
            SourceFormat::Documents { line } => {
                let reader = &mut self.reader;
                up_to(size, || read_jsonl(reader, line, jsonl_document)).map(Batch::Documents)
            }
        }
    }
}

/// `path` opened for counted reading, and its size.
fn open_counting(path: &Path) -> anyhow::Result<(CountingReader<BufReader<File>>, u64)> {
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let total_bytes = file.metadata().with_context(|| format!("stat {}", path.display()))?.len();
    Ok((CountingReader { inner: BufReader::with_capacity(1 << 20, file), bytes: 0 }, total_bytes))
}

/// Up to `size` records from `next`, stopping early when it has no more.
fn up_to<T>(size: usize, mut next: impl FnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<Vec<T>> {
    let mut records = Vec::with_capacity(size);
    while records.len() < size {
        let Some(record) = next()? else { break };
        records.push(record);
    }
    Ok(records)
}

/// The next point in `format`, numbered `row` when the format has no ids.
fn next_point(
    reader: &mut CountingReader<BufReader<File>>,
    format: &mut PointFormat,
    row: &mut u64,
) -> anyhow::Result<Option<pb::Point>> {
    let current = *row;
    let point = match format {
        PointFormat::Fvecs { dimension } => read_fvecs_row(reader, dimension, current)?,
        PointFormat::Npy { rows, columns, big_endian } => {
            if current >= *rows {
                return Ok(None);
            }
            let vector = read_floats(reader, *columns, *big_endian)
                .with_context(|| format!("row {current}: the file ends inside it"))?;
            Some(numbered_point(current, vector))
        }
        PointFormat::Jsonl { line } => read_jsonl(reader, line, jsonl_point)?,
    };
    if point.is_some() {
        *row += 1;
    }
    Ok(point)
}

/// A reader that counts what was read through it.
struct CountingReader<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.bytes += read as u64;
        Ok(read)
    }
}

impl<R: BufRead> BufRead for CountingReader<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.bytes += amount as u64;
        self.inner.consume(amount);
    }
}

fn numbered_point(row: u64, vector: Vec<f32>) -> pb::Point {
    pb::Point { id: Some(pb::PointId { kind: Some(pb::point_id::Kind::Num(row)) }), vector, payload: None }
}

fn read_floats(reader: &mut impl Read, count: usize, big_endian: bool) -> std::io::Result<Vec<f32>> {
    let mut bytes = vec![0_u8; count * 4];
    reader.read_exact(&mut bytes)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|chunk| {
            let array = [chunk[0], chunk[1], chunk[2], chunk[3]];
            if big_endian { f32::from_be_bytes(array) } else { f32::from_le_bytes(array) }
        })
        .collect())
}

/// One fvecs row: `None` at a clean end of file; every row must have the first row's dimension.
fn read_fvecs_row(
    reader: &mut impl Read,
    dimension: &mut Option<usize>,
    row: u64,
) -> anyhow::Result<Option<pb::Point>> {
    let mut prefix = [0_u8; 4];
    let mut filled = 0;
    while filled < prefix.len() {
        let read = reader.read(&mut prefix[filled..]).with_context(|| format!("row {row}"))?;
        if read == 0 {
            if filled == 0 {
                return Ok(None);
            }
            bail!("row {row}: the file ends inside the dimension prefix");
        }
        filled += read;
    }
    let declared = i32::from_le_bytes(prefix);
    let Ok(row_dimension) = usize::try_from(declared) else {
        bail!("row {row}: dimension {declared} is negative")
    };
    if row_dimension == 0 || row_dimension > 65_536 {
        bail!("row {row}: dimension {row_dimension} is outside 1..=65536 (is this an fvecs file?)");
    }
    match dimension {
        Some(expected) if *expected != row_dimension => {
            bail!("row {row}: dimension {row_dimension}, the rows before have {expected}")
        }
        _ => *dimension = Some(row_dimension),
    }
    let vector = read_floats(reader, row_dimension, false)
        .with_context(|| format!("row {row}: the file ends inside it"))?;
    Ok(Some(numbered_point(row, vector)))
}

/// The next non-blank line, parsed with `parse`; `None` at the end of the file.
fn read_jsonl<T>(
    reader: &mut impl BufRead,
    line_number: &mut u64,
    parse: fn(&str) -> anyhow::Result<T>,
) -> anyhow::Result<Option<T>> {
    let mut line = String::new();
    loop {
        line.clear();
        *line_number += 1;
        if reader.read_line(&mut line).with_context(|| format!("line {line_number}"))? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    parse(&line).map(Some).with_context(|| format!("line {line_number}"))
}

/// A JSONL line as an object whose fields are all among `known`.
fn jsonl_object(line: &str, known: &[&str]) -> anyhow::Result<Map<String, Value>> {
    let value: Value = serde_json::from_str(line).context("not a JSON object")?;
    let Value::Object(fields) = value else { bail!("not a JSON object") };
    for name in fields.keys() {
        if !known.contains(&name.as_str()) {
            bail!("unknown field `{name}` (expected {})", known.join(", "));
        }
    }
    Ok(fields)
}

/// The `id` field: a string or an unsigned integer.
fn jsonl_id(fields: &Map<String, Value>) -> anyhow::Result<pb::PointId> {
    let kind = match fields.get("id") {
        Some(Value::String(text)) => pb::point_id::Kind::Str(text.clone()),
        Some(Value::Number(number)) => match number.as_u64() {
            Some(number) => pb::point_id::Kind::Num(number),
            None => bail!("`id` must be a string or an unsigned integer"),
        },
        _ => bail!("`id` must be a string or an unsigned integer"),
    };
    Ok(pb::PointId { kind: Some(kind) })
}

/// The optional `payload` field: an object.
fn jsonl_payload(fields: &Map<String, Value>) -> anyhow::Result<Option<prost_types::Struct>> {
    match fields.get("payload") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(payload)) => Ok(Some(sutazai_proto::json::to_proto_struct(payload))),
        Some(_) => bail!("`payload` must be an object"),
    }
}

fn jsonl_point(line: &str) -> anyhow::Result<pb::Point> {
    let fields = jsonl_object(line, &["id", "vector", "payload"])?;
    let id = jsonl_id(&fields)?;
    let Some(Value::Array(components)) = fields.get("vector") else {
        bail!("`vector` must be a list of numbers")
    };
    let mut vector = Vec::with_capacity(components.len());
    for component in components {
        let Some(number) = component.as_f64() else { bail!("`vector` must be a list of numbers") };
        vector.push(number as f32);
    }
    Ok(pb::Point { id: Some(id), vector, payload: jsonl_payload(&fields)? })
}

/// A document line: `{"id", "text", "payload"?}`; the text must not be blank.
fn jsonl_document(line: &str) -> anyhow::Result<pb::Document> {
    let fields = jsonl_object(line, &["id", "text", "payload"])?;
    let id = jsonl_id(&fields)?;
    let text = match fields.get("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
        _ => bail!("`text` must be a non-blank string"),
    };
    Ok(pb::Document { id: Some(id), text, payload: jsonl_payload(&fields)? })
}

/// What an npy header says about a 2-D float32 array.
#[derive(Debug, PartialEq, Eq)]
struct NpyHeader {
    rows: u64,
    columns: usize,
    big_endian: bool,
}

/// Reads the magic, version, header length and header dictionary of an npy file.
fn read_npy_header(reader: &mut impl Read) -> anyhow::Result<NpyHeader> {
    let mut preamble = [0_u8; 8];
    reader.read_exact(&mut preamble).context("shorter than an npy preamble")?;
    if &preamble[..6] != b"\x93NUMPY" {
        bail!("not an npy file (bad magic)");
    }
    let header_length = match preamble[6] {
        1 => {
            let mut length = [0_u8; 2];
            reader.read_exact(&mut length)?;
            usize::from(u16::from_le_bytes(length))
        }
        2 | 3 => {
            let mut length = [0_u8; 4];
            reader.read_exact(&mut length)?;
            usize::try_from(u32::from_le_bytes(length)).context("header too long")?
        }
        version => bail!("npy format version {version} is not supported"),
    };
    if header_length > 1 << 20 {
        bail!("npy header of {header_length} bytes is implausible");
    }
    let mut header = vec![0_u8; header_length];
    reader.read_exact(&mut header).context("the file ends inside the npy header")?;
    let text = std::str::from_utf8(&header).context("the npy header is not text")?;
    parse_npy_header(text)
}

/// Parses the header dictionary, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (10, 4), }`.
fn parse_npy_header(header: &str) -> anyhow::Result<NpyHeader> {
    let descr = quoted_value(header, "descr").context("the header has no `descr`")?;
    let big_endian = match descr {
        "<f4" | "=f4" => false,
        ">f4" => true,
        other => bail!("dtype `{other}` is not float32 (convert with `array.astype(numpy.float32)`)"),
    };
    let fortran_order = raw_value(header, "fortran_order").context("the header has no `fortran_order`")?;
    if !fortran_order.starts_with("False") {
        bail!("the array is in Fortran order; save it in C order (`numpy.ascontiguousarray`)");
    }
    let shape = raw_value(header, "shape").context("the header has no `shape`")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|rest| rest.split_once(')'))
        .map(|(inside, _)| inside)
        .context("`shape` is not a tuple")?;
    let dimensions: Vec<u64> = inner
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| part.parse::<u64>().with_context(|| format!("`shape` has a non-integer `{part}`")))
        .collect::<anyhow::Result<_>>()?;
    let [rows, columns] = dimensions[..] else {
        bail!("the array has {} dimensions; a 2-D array (rows, dimension) is needed", dimensions.len());
    };
    let columns = usize::try_from(columns).context("dimension too large")?;
    if columns == 0 || columns > 65_536 {
        bail!("dimension {columns} is outside 1..=65536");
    }
    Ok(NpyHeader { rows, columns, big_endian })
}

/// The text after `'key':` (or `"key":`), trimmed at the start.
fn raw_value<'header>(header: &'header str, key: &str) -> Option<&'header str> {
    let position = header.find(&format!("'{key}'")).or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[position + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// The quoted string after `'key':`.
fn quoted_value<'header>(header: &'header str, key: &str) -> Option<&'header str> {
    let rest = raw_value(header, key)?;
    let quote = rest.chars().next().filter(|quote| *quote == '\'' || *quote == '"')?;
    let inner = &rest[1..];
    inner.find(quote).map(|end| &inner[..end])
}

/// The progress bar on stderr: redrawn in place with `\r`, at most every [`REDRAW_EVERY`], and
/// only when stderr is a terminal (a log file gets the summary line alone).
struct Progress {
    total_bytes: u64,
    enabled: bool,
    /// What is counted: `points` or `documents`.
    unit: &'static str,
    last_draw: Option<Instant>,
}

impl Progress {
    fn new(total_bytes: u64, enabled: bool, unit: &'static str) -> Self {
        Self { total_bytes, enabled, unit, last_draw: None }
    }

    fn update(&mut self, done_bytes: u64, records: u64, elapsed: Duration) {
        if !self.enabled || self.last_draw.is_some_and(|at| at.elapsed() < REDRAW_EVERY) {
            return;
        }
        self.last_draw = Some(Instant::now());
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{}", render(done_bytes, self.total_bytes, records, elapsed, self.unit));
        let _ = stderr.flush();
    }

    fn finish(&mut self, done_bytes: u64, records: u64, elapsed: Duration) {
        if self.enabled {
            self.last_draw = None;
            self.update(done_bytes, records, elapsed);
            eprintln!();
        }
    }
}

/// One frame of the bar: `[#####.....]  50%  12000 points  3400 points/s`.
fn render(done_bytes: u64, total_bytes: u64, records: u64, elapsed: Duration, unit: &str) -> String {
    let fraction =
        if total_bytes == 0 { 1.0 } else { (done_bytes as f64 / total_bytes as f64).clamp(0.0, 1.0) };
    let filled = ((fraction * BAR_WIDTH as f64).round() as usize).min(BAR_WIDTH);
    let rate = records as f64 / elapsed.as_secs_f64().max(1e-3);
    format!(
        "[{}{}] {:>3.0}%  {records} {unit}  {rate:.0} {unit}/s",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        fraction * 100.0
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use super::*;

    fn kind(point: &pb::Point) -> pb::point_id::Kind {
        point.id.clone().unwrap().kind.unwrap()
    }

    #[test]
    fn npy_headers() {
        let header =
            parse_npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }").unwrap();
        assert_eq!(header, NpyHeader { rows: 1000, columns: 128, big_endian: false });
        let big =
            parse_npy_header("{\"descr\": \">f4\", \"fortran_order\": False, \"shape\": (3,4)}").unwrap();
        assert!(big.big_endian);
        for (bad, expected) in [
            ("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }", "not float32"),
            ("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }", "Fortran order"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", "has 1 dimensions"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 0), }", "outside 1..=65536"),
            ("{'descr': '<f4', 'fortran_order': False}", "no `shape`"),
        ] {
            let error = parse_npy_header(bad).unwrap_err().to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn npy_files_read_row_by_row() {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let mut dictionary = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".to_owned();
        while !(10 + dictionary.len() + 1).is_multiple_of(64) {
            dictionary.push(' ');
        }
        dictionary.push('\n');
        bytes.extend_from_slice(&u16::try_from(dictionary.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(dictionary.as_bytes());
        for value in [1.0_f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("rows.npy");
        std::fs::write(&path, &bytes).unwrap();
        let mut source = PointSource::open(&path, format_of(&path).unwrap()).unwrap();
        let Batch::Points(batch) = source.next_batch(10).unwrap() else { panic!("points expected") };
        assert_eq!(batch.len(), 2);
        assert_eq!(kind(&batch[1]), pb::point_id::Kind::Num(1));
        assert_eq!(batch[1].vector, [4.0, 5.0, 6.0]);
        assert!(source.next_batch(10).unwrap().is_empty());
        assert_eq!(source.position_bytes(), bytes.len() as u64);
    }

    #[test]
    fn fvecs_rows_and_damage() {
        let mut bytes = Vec::new();
        for row in 0..3_u32 {
            bytes.extend_from_slice(&2_i32.to_le_bytes());
            bytes.extend_from_slice(&(row as f32).to_le_bytes());
            bytes.extend_from_slice(&0.5_f32.to_le_bytes());
        }
        let mut dimension = None;
        let mut reader = &bytes[..];
        let mut rows = Vec::new();
        while let Some(point) = read_fvecs_row(&mut reader, &mut dimension, rows.len() as u64).unwrap() {
            rows.push(point);
        }
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].vector, [2.0, 0.5]);
        assert_eq!(kind(&rows[2]), pb::point_id::Kind::Num(2));
        let mut torn = &bytes[..bytes.len() - 2];
        let mut dimension = None;
        let errors: Vec<String> = (0..3)
            .filter_map(|row| {
                read_fvecs_row(&mut torn, &mut dimension, row).err().map(|error| format!("{error:#}"))
            })
            .collect();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("row 2: the file ends inside it"), "{errors:?}");
        let mut changed = bytes.clone();
        changed[12..16].copy_from_slice(&3_i32.to_le_bytes());
        let mut reader = &changed[..];
        let mut dimension = None;
        read_fvecs_row(&mut reader, &mut dimension, 0).unwrap();
        let error = read_fvecs_row(&mut reader, &mut dimension, 1).unwrap_err().to_string();
        assert_eq!(error, "row 1: dimension 3, the rows before have 2");
    }

    #[test]
    fn jsonl_lines() {
        let point = jsonl_point(r#"{"id": "7", "vector": [1, 2.5], "payload": {"a": [1, "x"]}}"#).unwrap();
        assert_eq!(kind(&point), pb::point_id::Kind::Str("7".to_owned()));
        assert_eq!(point.vector, [1.0, 2.5]);
        assert!(point.payload.is_some());
        let numbered = jsonl_point(r#"{"id": 7, "vector": [0]}"#).unwrap();
        assert_eq!(kind(&numbered), pb::point_id::Kind::Num(7));
        for (bad, expected) in [
            (r#"{"id": -1, "vector": [0]}"#, "`id` must be"),
            (r#"{"id": 1, "vector": "x"}"#, "`vector` must be"),
            (r#"{"id": 1, "vector": [0], "payload": 3}"#, "`payload` must be"),
            (
                r#"{"id": 1, "vector": [0], "extra": 3}"#,
                "unknown field `extra` (expected id, vector, payload)",
            ),
            ("[1]", "not a JSON object"),
        ] {
            let error = jsonl_point(bad).unwrap_err().to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
        let text = "\n{\"id\": 1, \"vector\": [1]}\n\n{\"id\": 2, \"vector\": [oops]}\n";
        let mut reader = text.as_bytes();
        let mut line = 0;
        assert!(read_jsonl(&mut reader, &mut line, jsonl_point).unwrap().is_some());
        let error = format!("{:#}", read_jsonl(&mut reader, &mut line, jsonl_point).unwrap_err());
        assert!(error.starts_with("line 4: not a JSON object"), "{error}");
    }

    #[test]
    fn document_lines() {
        let document =
            jsonl_document(r#"{"id": "d-1", "text": "Teal is a colour.", "payload": {"lang": "en"}}"#)
                .unwrap();
        assert_eq!(document.id.unwrap().kind.unwrap(), pb::point_id::Kind::Str("d-1".to_owned()));
        assert_eq!(document.text, "Teal is a colour.");
        assert!(document.payload.is_some());
        assert!(jsonl_document(r#"{"id": 3, "text": "x"}"#).unwrap().payload.is_none());
        for (bad, expected) in [
            (r#"{"id": 1, "text": "  "}"#, "`text` must be a non-blank string"),
            (r#"{"id": 1}"#, "`text` must be a non-blank string"),
            (
                r#"{"id": 1, "text": "x", "vector": [1]}"#,
                "unknown field `vector` (expected id, text, payload)",
            ),
            (r#"{"text": "x"}"#, "`id` must be"),
        ] {
            let error = jsonl_document(bad).unwrap_err().to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("docs.jsonl");
        let lines: Vec<String> =
            (0..5).map(|index| format!("{{\"id\": {index}, \"text\": \"document {index}\"}}\n")).collect();
        std::fs::write(&path, lines.concat()).unwrap();
        let mut source = PointSource::open_documents(&path).unwrap();
        let Batch::Documents(first) = source.next_batch(3).unwrap() else { panic!("documents expected") };
        assert_eq!(
            first.iter().map(|document| document.text.as_str()).collect::<Vec<_>>(),
            ["document 0", "document 1", "document 2"]
        );
        assert_eq!(source.next_batch(3).unwrap().len(), 2);
        assert!(source.next_batch(3).unwrap().is_empty());
        assert_eq!(source.position_bytes(), source.total_bytes());
    }

    #[test]
    fn progress_bar_frames() {
        let frame = render(50, 100, 1200, Duration::from_secs(2), "points");
        assert_eq!(frame, format!("[{}{}]  50%  1200 points  600 points/s", "#".repeat(15), ".".repeat(15)));
        assert!(render(0, 0, 0, Duration::ZERO, "points").starts_with(&format!("[{}] 100%", "#".repeat(30))));
        assert!(
            render(1, 2, 64, Duration::from_secs(1), "documents").ends_with("64 documents  64 documents/s")
        );
    }
}
