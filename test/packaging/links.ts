/**
 * The links of a README as a reader of the npm page follows them: a relative
 * link must name a file the tarball ships (npm shows the README, not the
 * repository), and a link into the repository
 * (`https://github.com/<owner>/<name>/blob/main/<path>`, or `tree/main/` for
 * a folder) must name a file the repository holds. Anchors into Markdown files
 * (the README's own `#section` included) must name one of their headings.
 */

/** What {@link deadLinks} checks against. */
export interface LinkContext {
  /** The repository's web address, ending with a slash: `https://github.com/progresscast/progresscast/`. */
  readonly repository: string;
  /** Files the tarball ships, relative to the package root (`README.md`, `lua/append.lua`). */
  readonly shipped: ReadonlySet<string>;
  /** Files the repository holds, relative to its root. */
  readonly tracked: ReadonlySet<string>;
  /** The text of a Markdown file (shipped or tracked, by the same path), for its headings; undefined when unknown. */
  readonly markdown: (path: string) => string | undefined;
}

/** Link targets of Markdown text, outside code: inline `[text](target)` and reference `[label]: target`. */
export function linkTargets(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, "").replace(/`[^`\n]*`/g, "");
  const inline = [...prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1] ?? "");
  const reference = [...prose.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((m) => m[1] ?? "");
  return [...inline, ...reference].filter((t) => t !== "");
}

/** GitHub's (and npm's) anchor of each heading of a Markdown text, a repeated one suffixed `-1`, `-2`, ... */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, "");
  for (const m of prose.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const slug = (m[1] ?? "")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

/** One message per link of `markdown` (the README at the package root) that a reader of the npm page could not follow. */
export function deadLinks(markdown: string, context: LinkContext): string[] {
  const problems: string[] = [];
  const anchorOk = (path: string, anchor: string): boolean => {
    if (anchor === "" || !path.endsWith(".md")) return true;
    const text = context.markdown(path);
    return text !== undefined && headingAnchors(text).has(anchor);
  };
  const holds = (files: ReadonlySet<string>, path: string, folder: boolean): boolean =>
    folder
      ? [...files].some((f) => f.startsWith(`${path.replace(/\/$/, "")}/`))
      : files.has(path) || [...files].some((f) => f.startsWith(`${path.replace(/\/$/, "")}/`));

  for (const target of linkTargets(markdown)) {
    const [address = "", anchor = ""] = target.split("#", 2);
    if (target.startsWith("#")) {
      if (!headingAnchors(markdown).has(anchor)) problems.push(`${target}: no heading of the README has this anchor`);
      continue;
    }
    if (/^[a-z][a-z0-9+.-]*:/i.test(address)) {
      if (!address.startsWith(context.repository)) continue; // another site, issues, the home page
      const m = /^(blob|tree)\/main\/(.+)$/.exec(address.slice(context.repository.length));
      if (!m) continue;
      const path = decodeURIComponent(m[2] ?? "");
      if (!holds(context.tracked, path, m[1] === "tree")) {
        problems.push(`${target}: the repository has no ${m[1] === "tree" ? "folder" : "file"} ${path}`);
      } else if (!anchorOk(path, anchor)) {
        problems.push(`${target}: ${path} has no heading with this anchor`);
      }
      continue;
    }
    const path = decodeURIComponent(address).replace(/^\.\//, "");
    if (path.startsWith("../") || path.startsWith("/")) {
      problems.push(`${target}: leads out of the package`);
    } else if (!holds(context.shipped, path, path.endsWith("/"))) {
      problems.push(
        `${target}: the package does not ship ${path} (link to ${context.repository}blob/main/${path}, or add it to "files")`,
      );
    } else if (!anchorOk(path, anchor)) {
      problems.push(`${target}: ${path} has no heading with this anchor`);
    }
  }
  return problems;
}
