//! `tipcctl`'s side of the control socket: send one request and print what comes back
//! ([`request`]), or pipe a connection between stdin/stdout and the node ([`pipe`]).

use super::proto::{read_frame, write_frame, Input, Reply, Request, MAX_DATA_FRAME, MAX_MESSAGE};
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
    if let Err(e) = write_frame(&mut s, req).await {
        // A node that refused us at once (credentials) may have closed before our request
        // went out: its answer says why.
        return match read_frame::<Reply, _>(&mut s).await {
            Ok(Some(Reply::Done(r))) => Ok(r),
            _ => Err(e),
        };
    }
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

/// Read the next input chunk for a connection: a line with its `\n` when `lines` (seqpacket:
/// one message per line), else what one read returns (at most [`MAX_DATA_FRAME`] bytes).
/// `None` at end of input. A line longer than a message ([`MAX_MESSAGE`] bytes, its `\n`
/// included) is an `InvalidData` error, never split: nothing of it is returned, and at most
/// [`MAX_MESSAGE`] bytes of it are read.
pub async fn read_chunk<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    lines: bool,
) -> io::Result<Option<bytes::Bytes>> {
    use tokio::io::AsyncBufReadExt;
    if lines {
        let max = MAX_MESSAGE;
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
                None if take < buf.len() => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "an input line is longer than {max} bytes, the largest seqpacket \
                             message: refused (a line is one message, never split)"
                        ),
                    ));
                }
                None => {
                    v.extend_from_slice(&buf[..take]);
                    r.consume(take);
                }
            }
        }
        Ok((!v.is_empty()).then(|| bytes::Bytes::from(v)))
    } else {
        let max = MAX_DATA_FRAME;
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
/// node's data frames to `output`; event lines go to `on_line`. Returns the node's verdict, or
/// the input's error (a line too long for a message, an unreadable input): then the control
/// connection is dropped, and the node closes the TIPC connection.
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
    if let Err(e) = write_frame(&mut wr, req).await {
        // As in `request`: a refusal may have closed the connection before our request.
        return match read_frame::<Reply, _>(&mut rd).await {
            Ok(Some(Reply::Done(r))) => Ok(r),
            _ => Err(e),
        };
    }
    let input_done = input.is_none();
    // Ok(Err(_)): writing to the node failed, which its final frame explains; Err(_): the
    // input failed.
    let send_input = async {
        let Some((r, lines)) = input.as_mut() else {
            return io::Result::Ok(Ok(()));
        };
        loop {
            let frame = match read_chunk(r, *lines).await? {
                Some(d) => Input::Data(d),
                None => Input::End,
            };
            let end = frame == Input::End;
            if let Err(e) = write_frame(&mut wr, &frame).await {
                return Ok(Err(e));
            }
            if end {
                return Ok(Ok(()));
            }
        }
    };
    tokio::pin!(send_input);
    let mut input_done = input_done;
    loop {
        tokio::select! {
            r = &mut send_input, if !input_done => {
                // A node that stopped reading (connection over) is not an error here: its
                // final frame says how the connection ended. The input's own errors are.
                let _ = r?;
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

    /// A seqpacket line of exactly one message (66000 bytes with its newline) is one chunk,
    /// also when the reader's buffer is smaller; one byte more is refused, never split.
    #[tokio::test]
    async fn read_chunk_line_over_a_message_is_refused_not_split() {
        let mut input = vec![b'x'; MAX_MESSAGE - 1];
        input.push(b'\n');
        input.extend_from_slice(b"short\n");
        let mut r = tokio::io::BufReader::with_capacity(MAX_DATA_FRAME, &input[..]);
        let first = read_chunk(&mut r, true).await.unwrap().unwrap();
        assert_eq!(first.len(), MAX_MESSAGE);
        assert_eq!(read_chunk(&mut r, true).await.unwrap().unwrap(), "short\n");
        assert_eq!(read_chunk(&mut r, true).await.unwrap(), None);

        let mut input = vec![b'y'; MAX_MESSAGE];
        input.push(b'\n');
        let mut r = tokio::io::BufReader::with_capacity(MAX_DATA_FRAME, &input[..]);
        let e = read_chunk(&mut r, true).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("longer than 66000 bytes"), "{e}");
        // Without a newline at all, at end of input: the same.
        let input = vec![b'z'; MAX_MESSAGE + 1];
        let mut r = tokio::io::BufReader::new(&input[..]);
        assert!(read_chunk(&mut r, true).await.is_err());
        // A last line of exactly one message without its newline is one chunk.
        let input = vec![b'w'; MAX_MESSAGE];
        let mut r = tokio::io::BufReader::new(&input[..]);
        assert_eq!(
            read_chunk(&mut r, true).await.unwrap().unwrap().len(),
            MAX_MESSAGE
        );
    }
}
