// Every ```cpp block of README.md and docs/*.md must be a region of an example that the build
// compiles (with -Werror) and the test suite runs, character for character, so that the
// documentation cannot drift from the code again (issue 12 item 7).
//
// In the Markdown, the line right before the block names its source:
//     <!-- snippet: examples/schema.cpp#tables -->
// In the example, the region is marked by whole-line comments:
//     // snippet-begin: tables
//     ...
//     // snippet-end: tables
// The region is compared after removing its common indentation (a region inside a function is
// shown from column 0); marker lines of other regions inside it are left out, so regions may
// nest. Usage: check_snippets <source dir> <compiled example source, relative>...
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;

std::vector<std::string> read_lines(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

// "// snippet-begin: name" -> name (for the given keyword), or nothing.
std::optional<std::string> marker(std::string_view line, std::string_view keyword) {
    line = trim(line);
    const std::string prefix = "// snippet-" + std::string{keyword} + ":";
    if (!line.starts_with(prefix)) return std::nullopt;
    return std::string{trim(line.substr(prefix.size()))};
}

bool is_any_marker(std::string_view line) {
    return marker(line, "begin") || marker(line, "end");
}

int failures = 0;

void fail(const std::string& where, const std::string& what) {
    std::fprintf(stderr, "%s: %s\n", where.c_str(), what.c_str());
    ++failures;
}

// The region's lines with their common indentation removed, or nothing with a reason.
std::optional<std::vector<std::string>> region(const std::vector<std::string>& source,
                                               const std::string& name, std::string& why) {
    std::optional<std::size_t> begin;
    std::optional<std::size_t> end;
    for (std::size_t i = 0; i < source.size(); ++i) {
        if (marker(source[i], "begin") == name) {
            if (begin) {
                why = "region '" + name + "' begins twice";
                return std::nullopt;
            }
            begin = i;
        } else if (marker(source[i], "end") == name && begin && !end) {
            end = i;
        }
    }
    if (!begin || !end) {
        why = "no region '" + name + "' (// snippet-begin: " + name + " ... // snippet-end: " + name + ")";
        return std::nullopt;
    }
    std::vector<std::string> lines;
    for (std::size_t i = *begin + 1; i < *end; ++i) {
        if (!is_any_marker(source[i])) lines.push_back(source[i]);
    }
    std::size_t indent = std::string::npos;
    for (const auto& l : lines) {
        const auto first = l.find_first_not_of(' ');
        if (first != std::string::npos) indent = std::min(indent, first);
    }
    for (auto& l : lines) {
        l = l.size() >= indent && indent != std::string::npos ? l.substr(indent) : trim(l).empty() ? "" : l;
    }
    return lines;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s <source dir> <compiled example source>...\n", argv[0]);
        return 2;
    }
    const fs::path root = argv[1];
    const std::set<std::string> compiled(argv + 2, argv + argc);

    std::vector<fs::path> docs{root / "README.md"};
    std::vector<fs::path> in_docs;
    for (const auto& e : fs::directory_iterator(root / "docs")) {
        if (e.path().extension() == ".md") in_docs.push_back(e.path());
    }
    std::sort(in_docs.begin(), in_docs.end());
    docs.insert(docs.end(), in_docs.begin(), in_docs.end());

    std::map<std::string, std::vector<std::string>> sources;
    int blocks = 0;
    for (const auto& doc : docs) {
        const auto lines = read_lines(doc);
        if (lines.empty()) fail(doc.string(), "cannot be read or is empty");
        const auto rel = fs::relative(doc, root).string();
        for (std::size_t i = 0; i < lines.size(); ++i) {
            const auto line = trim(lines[i]);
            const bool is_snippet_comment = line.starts_with("<!-- snippet:");
            if (!line.starts_with("```") && !is_snippet_comment) continue;
            const std::string where = rel + ":" + std::to_string(i + 1);
            if (is_snippet_comment) {
                if (i + 1 >= lines.size() || trim(lines[i + 1]) != "```cpp")
                    fail(where, "a snippet comment must be followed directly by a ```cpp block");
                continue;
            }
            // A fence: find its end; only C++ blocks are checked.
            const auto info = trim(line.substr(3));
            std::size_t close = i + 1;
            while (close < lines.size() && trim(lines[close]) != "```")
                ++close;
            if (close >= lines.size()) {
                fail(where, "a fenced block is never closed");
                break;
            }
            if (info == "cpp" || info == "c++" || info == "cxx") {
                ++blocks;
                const auto comment = i > 0 ? trim(lines[i - 1]) : std::string_view{};
                constexpr std::string_view open = "<!-- snippet:";
                constexpr std::string_view shut = "-->";
                if (!comment.starts_with(open) || !comment.ends_with(shut)) {
                    fail(where,
                         "a ```cpp block without '<!-- snippet: examples/<file>.cpp#<region> -->' on "
                         "the line before it: every C++ snippet must come from a compiled example");
                } else {
                    const auto ref = std::string{
                        trim(comment.substr(open.size(), comment.size() - open.size() - shut.size()))};
                    const auto hash = ref.find('#');
                    const auto file = ref.substr(0, hash);
                    const auto name = hash == std::string::npos ? std::string{} : ref.substr(hash + 1);
                    if (name.empty()) {
                        fail(where, "the snippet comment names no region (" + ref + ")");
                    } else if (compiled.count(file) == 0) {
                        fail(where, file + " is not an example the build compiles and runs");
                    } else {
                        if (!sources.count(file)) sources[file] = read_lines(root / file);
                        std::string why;
                        const auto want = region(sources[file], name, why);
                        const std::vector<std::string> have(
                            lines.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                            lines.begin() + static_cast<std::ptrdiff_t>(close));
                        if (!want) {
                            fail(where, file + ": " + why);
                        } else if (*want != have) {
                            std::size_t k = 0;
                            while (k < want->size() && k < have.size() && (*want)[k] == have[k])
                                ++k;
                            fail(where + " (block line " + std::to_string(k + 1) + ")",
                                 "differs from " + ref + ":\n  doc:     " +
                                     (k < have.size() ? have[k] : std::string{"<block ends>"}) +
                                     "\n  example: " +
                                     (k < want->size() ? (*want)[k] : std::string{"<region ends>"}));
                        }
                    }
                }
            }
            i = close;
        }
    }
    if (blocks == 0) fail(root.string(), "no ```cpp block found at all: is this the right directory?");
    if (failures != 0) {
        std::fprintf(stderr, "%d snippet problem(s); edit the example region and copy it into the document\n",
                     failures);
        return 1;
    }
    std::printf("%d C++ snippets match their compiled examples\n", blocks);
    return 0;
}
