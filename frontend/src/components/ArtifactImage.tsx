import { useEffect, useState, type ReactNode } from "react";

import { useArtifact } from "../api/generations";
import { describeError } from "../api/errors";

/**
 * A job's image artifact (a grid or one generated image), fetched with the key through
 * the typed client. Small generated images are scaled up without smoothing, so `width`
 * is the displayed width; the height follows the image.
 */
export function ArtifactImage({ jobId, name, alt, width, className = "" }: { jobId: string; name: string; alt: string; width?: number; className?: string }): ReactNode {
  const blob = useArtifact(jobId, name);
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!blob.data) return;
    const u = URL.createObjectURL(blob.data);
    setUrl(u);
    return () => URL.revokeObjectURL(u);
  }, [blob.data]);
  const style = width ? { width } : undefined;
  if (blob.error) {
    return (
      <span className={`artifact artifact-failed ${className}`} style={style} role="img" aria-label={`${alt}: could not load (${describeError(blob.error)})`} title={describeError(blob.error)}>
        !
      </span>
    );
  }
  if (!url) return <span className={`artifact artifact-loading ${className}`} style={style} role="img" aria-label={`${alt}: loading`} />;
  return <img className={`artifact ${className}`} src={url} alt={alt} style={style} />;
}
