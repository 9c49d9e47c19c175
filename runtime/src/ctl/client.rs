//! `tipcctl`'s side of the control socket: send one request and print what comes back
//! ([`request`]), or pipe a connection between stdin/stdout and the node ([`pipe`]).

use super::proto::{read_frame, write_frame, Input, Reply, Request, MAX_DATA_FRAME};
use std::io;
use std::path::Path;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// Connect to a node's control socket, with an error that says what to check.
async fn connect_control(path: &Path) -> io::Result<UnixStream> {
    UnixStream::connect(path).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach node at {}: {e} (is tipc-node running with --control?)",
                path.display()
            ),
        )
    })
}

/// Send `req` to the node at `path`, call `on_line` for each output frame.
pub async fn request(
    path: &Path,
    req: &Request,
    mut on_line: impl FnMut(&str),
) -> io::Result<Result<(), String>> {
    let mut s = connect_control(path).await?;
    write_frame(&mut s, req).await?;
    loop {
        match read_frame::<Reply, _>(&mut s).await? {
            Some(Reply::Line(l)) => on_line(&l),
            Some(Reply::Data(d)) => on_line(&String::from_utf8_lossy(&d)),
            Some(Reply::Done(r)) => return Ok(r),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "node closed the control connection",
                ))
            }
        }
    }
}

/// Read the next input chunk for a connection: a line (with its `\n`, cut at
/// [`MAX_DATA_FRAME`]) when `lines` (seqpacket: one message per line), else what one read
/// returns (at most [`MAX_DATA_FRAME`] bytes). `None` at end of input.
pub async fn read_chunk<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    lines: bool,
) -> io::Result<Option<bytes::Bytes>> {
    use tokio::io::AsyncBufReadExt;
    let max = MAX_DATA_FRAME;
    if lines {
        let mut v = Vec::new();
        loop {
            let buf = r.fill_buf().await?;
            if buf.is_empty() {
                break;
            }
            let room = max - v.len();
            let take = buf.len().min(room);
            match buf[..take].iter().position(|&b| b == b'\n') {
                Some(p) => {
                    v.extend_from_slice(&buf[..=p]);
                    r.consume(p + 1);
                    break;
                }
                None => {
                    v.extend_from_slice(&buf[..take]);
                    r.consume(take);
                    if v.len() == max {
                        break;
                    }
                }
            }
        }
        Ok((!v.is_empty()).then(|| bytes::Bytes::from(v)))
    } else {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(None);
        }
        let take = buf.len().min(max);
        let d = bytes::Bytes::copy_from_slice(&buf[..take]);
        r.consume(take);
        Ok(Some(d))
    }
}

/// Client side of a connection command: send `req`, then pipe `input` to the node (chunks as
/// [`read_chunk`] cuts them: one message each on a seqpacket connection when `lines`) and the
/// node's data frames to `output`; event lines go to `on_line`. Returns the node's verdict.
pub async fn pipe<R, W>(
    path: &Path,
    req: &Request,
    mut input: Option<(R, bool)>,
    mut output: W,
    mut on_line: impl FnMut(&str),
) -> io::Result<Result<(), String>>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let s = connect_control(path).await?;
    let (mut rd, mut wr) = s.into_split();
    write_frame(&mut wr, req).await?;
    let input_done = input.is_none();
    let send_input = async {
        let Some((r, lines)) = input.as_mut() else {
            return io::Result::Ok(());
        };
        loop {
            match read_chunk(r, *lines).await? {
                Some(d) => write_frame(&mut wr, &Input::Data(d)).await?,
                None => {
                    write_frame(&mut wr, &Input::End).await?;
                    return Ok(());
                }
            }
        }
    };
    tokio::pin!(send_input);
    let mut input_done = input_done;
    loop {
        tokio::select! {
            r = &mut send_input, if !input_done => {
                // A node that stopped reading (connection over) is not an error here: its
                // final frame says how the connection ended.
                let _ = r;
                input_done = true;
            }
            f = read_frame::<Reply, _>(&mut rd) => match f? {
                Some(Reply::Line(l)) => on_line(&l),
                Some(Reply::Data(d)) => {
                    output.write_all(&d).await?;
                    output.flush().await?;
                }
                Some(Reply::Done(r)) => return Ok(r),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "node closed the control connection",
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_chunk_cuts_lines_for_seqpacket_and_reads_for_stream() {
        let mut r = tokio::io::BufReader::new(&b"one\ntwo\nend"[..]);
        let mut got = Vec::new();
        while let Some(c) = read_chunk(&mut r, true).await.unwrap() {
            got.push(c);
        }
        assert_eq!(got, ["one\n", "two\n", "end"]);
        let mut r = tokio::io::BufReader::new(&b"one\ntwo\n"[..]);
        assert_eq!(
            read_chunk(&mut r, false).await.unwrap().unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(read_chunk(&mut r, false).await.unwrap(), None);
    }

    #[tokio::test]
    async fn read_chunk_cuts_a_long_line_at_the_data_frame_limit() {
        let long = vec![b'x'; MAX_DATA_FRAME + 10];
        let mut r = tokio::io::BufReader::new(&long[..]);
        let first = read_chunk(&mut r, true).await.unwrap().unwrap();
        assert_eq!(first.len(), MAX_DATA_FRAME);
        let rest = read_chunk(&mut r, true).await.unwrap().unwrap();
        assert_eq!(rest.len(), 10);
    }
}
