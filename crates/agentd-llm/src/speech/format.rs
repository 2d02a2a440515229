//! Audio formats: what a transcription accepts, what speech comes out as, and how each is
//! named, typed and joined.

use std::fmt;
use std::str::FromStr;

/// An audio container or encoding, by the name OpenAI's audio endpoints use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// MPEG-1 layer III. In and out.
    Mp3,
    /// MPEG-4 audio. In only.
    Mp4,
    /// MPEG-4 audio (Apple's name). In only.
    M4a,
    /// Ogg (Vorbis or Opus). In only.
    Ogg,
    /// Opus in Ogg. Out only.
    Opus,
    /// WAVE (PCM with a header). In and out.
    Wav,
    /// WebM (what browsers' `MediaRecorder` makes). In only.
    Webm,
    /// FLAC. In and out.
    Flac,
    /// AAC in ADTS frames. Out only.
    Aac,
    /// Raw 24 kHz 16-bit signed little-endian mono samples, no header. Out only.
    Pcm,
}

impl AudioFormat {
    /// Every format, in the order lists show them.
    pub const ALL: [AudioFormat; 10] = [
        AudioFormat::Mp3,
        AudioFormat::Mp4,
        AudioFormat::M4a,
        AudioFormat::Ogg,
        AudioFormat::Opus,
        AudioFormat::Wav,
        AudioFormat::Webm,
        AudioFormat::Flac,
        AudioFormat::Aac,
        AudioFormat::Pcm,
    ];

    /// The name in requests and responses (`"mp3"`, `"wav"`...).
    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Mp4 => "mp4",
            AudioFormat::M4a => "m4a",
            AudioFormat::Ogg => "ogg",
            AudioFormat::Opus => "opus",
            AudioFormat::Wav => "wav",
            AudioFormat::Webm => "webm",
            AudioFormat::Flac => "flac",
            AudioFormat::Aac => "aac",
            AudioFormat::Pcm => "pcm",
        }
    }

    /// The media type of a file in this format.
    pub fn mime_type(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Mp4 | AudioFormat::M4a => "audio/mp4",
            AudioFormat::Ogg => "audio/ogg",
            AudioFormat::Opus => "audio/opus",
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Webm => "audio/webm",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::Aac => "audio/aac",
            AudioFormat::Pcm => "audio/pcm",
        }
    }

    /// Whether `/audio/transcriptions` takes it (OpenAI's list: flac, mp3, mp4, m4a, ogg, wav,
    /// webm).
    pub fn is_input(self) -> bool {
        matches!(
            self,
            AudioFormat::Mp3 | AudioFormat::Mp4 | AudioFormat::M4a | AudioFormat::Ogg | AudioFormat::Wav | AudioFormat::Webm | AudioFormat::Flac
        )
    }

    /// Whether `/audio/speech` makes it (OpenAI's list: mp3, opus, aac, flac, wav, pcm).
    pub fn is_output(self) -> bool {
        matches!(self, AudioFormat::Mp3 | AudioFormat::Opus | AudioFormat::Aac | AudioFormat::Flac | AudioFormat::Wav | AudioFormat::Pcm)
    }

    /// Whether two files in this format played one after the other are one valid file (MP3 and
    /// ADTS AAC are sequences of frames, PCM a sequence of samples; WAV and FLAC have a header
    /// that states the length, and chained Ogg streams trip many players).
    pub fn concatenates(self) -> bool {
        matches!(self, AudioFormat::Mp3 | AudioFormat::Aac | AudioFormat::Pcm)
    }

    /// The names of the formats `/audio/transcriptions` takes, for error messages.
    pub fn input_names() -> String {
        Self::names(Self::is_input)
    }

    /// The names of the formats `/audio/speech` makes, for error messages.
    pub fn output_names() -> String {
        Self::names(Self::is_output)
    }

    fn names(keep: fn(AudioFormat) -> bool) -> String {
        Self::ALL.iter().copied().filter(|f| keep(*f)).map(AudioFormat::as_str).collect::<Vec<_>>().join(", ")
    }
}

impl FromStr for AudioFormat {
    type Err = String;

    /// A format by its name, in any case; `mpeg`/`mpga` are MP3 and `oga` is Ogg.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        let alias = match name.as_str() {
            "mpeg" | "mpga" => "mp3",
            "oga" => "ogg",
            other => other,
        };
        Self::ALL.iter().copied().find(|f| f.as_str() == alias).ok_or_else(|| format!("unknown audio format {s:?}"))
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name_and_alias() {
        for format in AudioFormat::ALL {
            assert_eq!(format.as_str().parse::<AudioFormat>(), Ok(format));
            assert_eq!(format.as_str().to_uppercase().parse::<AudioFormat>(), Ok(format));
        }
        assert_eq!("mpga".parse::<AudioFormat>(), Ok(AudioFormat::Mp3));
        assert_eq!(" oga ".parse::<AudioFormat>(), Ok(AudioFormat::Ogg));
        assert!("midi".parse::<AudioFormat>().unwrap_err().contains("midi"));
    }

    #[test]
    fn input_and_output_sets_are_openais() {
        assert_eq!(AudioFormat::input_names(), "mp3, mp4, m4a, ogg, wav, webm, flac");
        assert_eq!(AudioFormat::output_names(), "mp3, opus, wav, flac, aac, pcm");
        assert!(AudioFormat::ALL.iter().all(|f| f.is_input() || f.is_output()));
        assert_eq!(AudioFormat::ALL.iter().filter(|f| f.concatenates()).count(), 3);
        assert!(AudioFormat::ALL.iter().filter(|f| f.concatenates()).all(|f| f.is_output()));
    }
}
